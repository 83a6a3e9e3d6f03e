"""HTTPS: `tandem server --tls-cert --tls-key`, with the stock client's own TLS settings
(`MLFLOW_TRACKING_SERVER_CERT_PATH`, `MLFLOW_TRACKING_INSECURE_TLS`) unchanged."""

import datetime
import ipaddress
import os
import socket
import subprocess
import tempfile

import pytest
import requests

from conftest import BIN, Server


@pytest.fixture(scope="module")
def server():
    yield None


@pytest.fixture(autouse=True)
def tracking():
    yield


def self_signed(folder, name="localhost"):
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(folder, name + ".crt"), os.path.join(folder, name + ".key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def https():
    with tempfile.TemporaryDirectory() as d:
        cert, key = self_signed(d)
        s = Server(os.path.join(d, "data"), ["--tls-cert", cert, "--tls-key", key])
        s.cert = cert
        s.dir = d
        yield s
        s.stop()
        assert s.proc.returncode == 0, "the HTTPS server did not stop cleanly on SIGTERM"


def test_the_stock_client_works_over_https_with_the_servers_certificate(https, monkeypatch, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    assert https.url.startswith("https://")
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", https.cert)
    c = MlflowClient(tracking_uri=https.url)
    exp = c.create_experiment("over-https")
    run = c.create_run(exp).info.run_id
    c.log_metric(run, "m", 1.5)
    (tmp_path / "a.txt").write_text("bytes over TLS")
    c.log_artifact(run, str(tmp_path / "a.txt"))
    got = mlflow.artifacts.download_artifacts(run_id=run, artifact_path="a.txt", dst_path=str(tmp_path / "out"), tracking_uri=https.url)
    assert open(got).read() == "bytes over TLS"
    assert c.get_run(run).data.metrics == {"m": 1.5}


def test_an_unknown_certificate_is_refused_unless_the_client_says_insecure(https, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises((MlflowException, requests.exceptions.SSLError)):
        MlflowClient(tracking_uri=https.url).search_experiments()
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    assert any(e.name == "Default" for e in MlflowClient(tracking_uri=https.url).search_experiments())


def test_plain_http_and_broken_handshakes_do_not_disturb_the_server(https):
    host, port = https.url[len("https://"):].split(":")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{host}:{port}/health", timeout=5)
    # A client that connects and says nothing, and one that sends garbage.
    silent = socket.create_connection((host, int(port)))
    with socket.create_connection((host, int(port))) as g:
        g.sendall(b"\x16\x03\x01 not a handshake")
    r = requests.get(https.url + "/health", verify=https.cert, timeout=5)
    assert r.status_code == 200 and r.text == "OK"
    silent.close()


def test_unusable_certificate_files_stop_the_start_naming_the_setting(tmp_path):
    cert, key = self_signed(str(tmp_path))
    other_cert, _ = self_signed(str(tmp_path), "other")
    cases = [
        (["--tls-cert", cert], "tls_key"),
        (["--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", key], "tls_cert"),
        (["--tls-cert", key, "--tls-key", key], "tls_cert"),
        (["--tls-cert", other_cert, "--tls-key", key], "tls_key"),
    ]
    for args, setting in cases:
        r = subprocess.run([BIN, "server", "--data", str(tmp_path / "data"), "--listen", "127.0.0.1:0", *args],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode != 0, (args, r.stdout)
        assert f"setting '{setting}'" in r.stderr and "panicked" not in r.stderr, (args, r.stderr)
