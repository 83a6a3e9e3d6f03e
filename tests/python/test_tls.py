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


def ca_and_leaf(folder):
    """A private CA, and a server certificate for 127.0.0.1 and localhost that it signed (rustls
    refuses a CA certificate used as a server's own): (ca.crt, server.crt, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tandem test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = [os.path.join(folder, n) for n in ("ca.crt", "server.crt", "server.key")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_deployment_over_https_end_to_end(tmp_path, monkeypatch):
    """Regions and the front door serve HTTPS (one private CA, trusted through `[tls] ca`):
    replication, status, failover and the stock client all go over TLS, with auth on."""
    import mlflow
    from mlflow import MlflowClient

    from test_access import ADMIN, ADMIN_PW, bootstrap_env
    from test_regions import Up

    data = tmp_path / "up"
    data.mkdir()
    ca, cert, key = ca_and_leaf(str(tmp_path))
    east, west, front = free_port(), free_port(), free_port()
    (data / "deployment.toml").write_text(f"""
[witness]
location = "file://{data}/witness"
[timing]
lease_ms = 3000
renew_ms = 500
[[region]]
name = "east"
listen = "127.0.0.1:{east}"
store = "sqlite://{data}/east/metadata.sqlite"
artifacts = "file://{data}/east/artifacts"
tls_cert = "{cert}"
tls_key = "{key}"
[[region]]
name = "west"
listen = "127.0.0.1:{west}"
store = "sqlite://{data}/west/metadata.sqlite"
artifacts = "file://{data}/west/artifacts"
tls_cert = "{cert}"
tls_key = "{key}"
[front_door]
listen = "127.0.0.1:{front}"
tls_cert = "{cert}"
tls_key = "{key}"
[tls]
ca = "{ca}"
[[workspace]]
name = "default"
mode = "hot/warm"
write_ack = "sync"
preferred_leader = "east"
[access]
key_file = "deployment.key"
""")
    up = Up("sync", auth="on", env=bootstrap_env(str(tmp_path)), data=str(data))
    try:
        assert up.url == f"https://127.0.0.1:{front}"
        assert all(u.startswith("https://") for u in up.urls.values())
        # Plain HTTP to a region is not served.
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(f"http://127.0.0.1:{east}/health", timeout=5)
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", ca)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PW)
        up.wait_for(lambda: requests.get(f"{up.url}/api/tandem/v1/access/whoami", auth=(ADMIN, ADMIN_PW), verify=ca, timeout=5).status_code == 200, 30, "the first admin")
        client = MlflowClient(up.url)
        run_id = client.create_run("0").info.run_id
        client.log_param(run_id, "before", "1")
        leader = up.leader()
        up.kill(leader)
        up.wait_for(lambda: up.leader() not in (None, leader), 60, "a new leader over https")
        client.log_param(run_id, "after", "1")
        assert client.get_run(run_id).data.params == {"before": "1", "after": "1"}
    finally:
        up.stop()


def test_sighup_reads_a_renewed_certificate(tmp_path):
    import shutil
    import signal as sig
    import ssl
    import time

    live = tmp_path / "live"
    live.mkdir()
    first = tmp_path / "first"
    first.mkdir()
    second = tmp_path / "second"
    second.mkdir()
    c1, k1 = self_signed(str(first))
    c2, k2 = self_signed(str(second))
    cert, key = str(live / "server.crt"), str(live / "server.key")
    shutil.copy(c1, cert)
    shutil.copy(k1, key)
    s = Server(str(tmp_path / "data"), ["--tls-cert", cert, "--tls-key", key])
    try:
        port = int(s.url.rsplit(":", 1)[1])
        served = lambda: ssl.get_server_certificate(("127.0.0.1", port)).strip()  # noqa: E731
        pem = lambda p: open(p).read().strip()  # noqa: E731
        assert served() == pem(c1)
        # Renewed: the files are replaced, SIGHUP, and new connections get the new one.
        shutil.copy(c2, cert)
        shutil.copy(k2, key)
        s.proc.send_signal(sig.SIGHUP)
        deadline = time.time() + 10
        while served() != pem(c2) and time.time() < deadline:
            time.sleep(0.1)
        assert served() == pem(c2)
        # A broken file is refused and the certificate in use stays; the server lives on.
        with open(cert, "w") as f:
            f.write("not a certificate")
        s.proc.send_signal(sig.SIGHUP)
        time.sleep(0.5)
        assert s.proc.poll() is None
        assert served() == pem(c2)
        assert requests.get(f"{s.url}/health", verify=c2, timeout=5).status_code == 200
    finally:
        s.stop()
