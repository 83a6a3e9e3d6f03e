"""A local OpenAI-compatible server for the gateway tests: chat completions (unary and
streamed), embeddings, an error on a bad key, and a slow answer. It records what it was
sent, so a test can check the credential and model the gateway forwarded. Loopback only;
started and stopped by the tests that use it."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self, key="sk-fake-provider-key-0001", name="fake", chunks=5, chunk_delay=0.2):
        self.key, self.name = key, name
        self.chunks, self.chunk_delay = chunks, chunk_delay
        self.seen = []
        self.slow = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # No 40 ms stalls from Nagle's algorithm meeting a client's delayed ACK: latency
            # measured through this server is the gateway's, not TCP's.
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # Head and body in one write.
                self._headers_buffer.append(b"\r\n" + data)
                self.flush_headers()

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    return self._json(200, {"object": "list", "data": []})
                self._json(404, {"error": {"message": "no such route"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                auth = self.headers.get("Authorization") or ("Bearer " + self.headers.get("api-key", ""))
                outer.seen.append({"path": self.path, "auth": auth, "body": body})
                if auth != f"Bearer {outer.key}":
                    return self._json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
                if outer.slow:
                    time.sleep(outer.slow)
                if self.path.split("?")[0].endswith("/embeddings"):
                    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    return self._json(200, {"object": "list", "model": body.get("model"), "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, float(i)]} for i in range(len(inputs))], "usage": {"prompt_tokens": 3, "total_tokens": 3}})
                if not self.path.split("?")[0].endswith("/chat/completions"):
                    return self._json(404, {"error": {"message": "no such route"}})
                text = f"hello from {outer.name}"
                if not body.get("stream"):
                    return self._json(200, {
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": body.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
                    })
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def chunk(payload):
                    data = f"data: {payload}\n\n".encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

                for i in range(outer.chunks):
                    chunk(json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": body.get("model"),
                                      "choices": [{"index": 0, "delta": {"content": f"part{i} "}, "finish_reason": None}],
                                      "sent_at": time.time()}))
                    time.sleep(outer.chunk_delay)
                chunk("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
