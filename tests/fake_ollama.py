"""A local Ollama server for tests: Ollama's documented endpoints over real HTTP on 127.0.0.1.

GET /api/version; HEAD and POST /api/blobs/:digest (an upload is hashed and refused with 400 when it
does not match its digest); POST /api/create, checked against the documented request (known fields
and types, `files` naming uploaded GGUF blobs, typed parameters). Requests are recorded."""
import hashlib, json, re, shutil, tempfile, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CREATE_FIELDS = {"model": str, "from": str, "files": dict, "adapters": dict, "template": str, "license": (str, list),
                 "system": str, "parameters": dict, "messages": list, "stream": bool, "quantize": str}
INT_OPTIONS = {"num_ctx", "num_predict", "top_k", "seed", "repeat_last_n", "num_keep", "num_batch", "num_gpu", "num_thread"}
FLOAT_OPTIONS = {"temperature", "top_p", "min_p", "typical_p", "repeat_penalty", "presence_penalty", "frequency_penalty"}


class FakeOllama:
    def __init__(self, version: str = "0.12.6"):
        self.version, self.dir = version, Path(tempfile.mkdtemp(prefix="fake-ollama-"))
        self.requests, self.creates, self.models, self.fail_create = [], [], {}, None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *a): pass
            def do_GET(self): fake._handle(self, "GET")
            def do_HEAD(self): fake._handle(self, "HEAD")
            def do_POST(self): fake._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self): self.thread.start(); return self
    def __exit__(self, *exc):
        self.server.shutdown(); self.server.server_close(); shutil.rmtree(self.dir, ignore_errors=True)

    def blob(self, digest: str) -> Path: return self.dir/digest.replace(":", "-")
    def count(self, method: str, prefix: str) -> int: return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    def _handle(self, h, method):
        self.requests.append((method, h.path))
        m = re.fullmatch(r"/api/blobs/(sha256:[0-9a-f]{64})", h.path)
        if method == "GET" and h.path == "/api/version": return self._send(h, 200, {"version": self.version})
        if m and method == "HEAD": return self._send(h, 200 if self.blob(m[1]).is_file() else 404)
        if m and method == "POST": return self._upload(h, m[1])
        if method == "POST" and h.path == "/api/create": return self._create(h)
        self._send(h, 404, {"error": f"{method} {h.path}: no such endpoint"})

    def _body(self, h):
        "The request body, sent with Content-Length or chunked."
        if h.headers.get("Transfer-Encoding", "").lower() != "chunked":
            n = int(h.headers.get("Content-Length", 0))
            while n > 0 and (b := h.rfile.read(min(n, 1 << 20))): n -= len(b); yield b
            return
        while (size := int(h.rfile.readline().split(b";")[0], 16)) > 0:
            yield h.rfile.read(size); h.rfile.readline()
        h.rfile.readline()

    def _upload(self, h, digest):
        sha = hashlib.sha256()
        with tempfile.NamedTemporaryFile(dir=self.dir, delete=False) as f:
            for b in self._body(h): f.write(b); sha.update(b)
        if "sha256:" + sha.hexdigest() != digest:
            Path(f.name).unlink()
            return self._send(h, 400, {"error": f"digest mismatch, expected {digest}, got sha256:{sha.hexdigest()}"})
        Path(f.name).replace(self.blob(digest))
        self._send(h, 201)

    def _create(self, h):
        body = json.loads(b"".join(self._body(h)))
        self.creates.append(body)
        problems = [f"unknown field {k!r}" for k in body if k not in CREATE_FIELDS]
        problems += [f"{k} has the wrong type" for k, t in CREATE_FIELDS.items() if k in body and not isinstance(body[k], t)]
        if not body.get("model"): problems.append("model is required")
        for name, d in (body.get("files") or {}).items():
            if not self.blob(d).is_file(): problems.append(f"{name}: no blob {d}")
            elif self.blob(d).open("rb").read(4) != b"GGUF": problems.append(f"{name}: not a GGUF file")
        for k, v in (body.get("parameters") or {}).items():
            if k == "stop" and not (isinstance(v, list) and all(isinstance(s, str) for s in v)): problems.append("stop must be a list of strings")
            if k in INT_OPTIONS and (isinstance(v, bool) or not isinstance(v, int)): problems.append(f"invalid int value {v!r} for {k}")
            if k in FLOAT_OPTIONS and (isinstance(v, bool) or not isinstance(v, (int, float))): problems.append(f"invalid float value {v!r} for {k}")
        if problems: return self._send(h, 400, {"error": "; ".join(problems)})
        if self.fail_create: return self._send(h, 500, {"error": self.fail_create})
        self.models[body["model"]] = body
        if body.get("stream") is False: return self._send(h, 200, {"status": "success"})
        self._send(h, 200, raw=b"".join(json.dumps(s).encode() + b"\n" for s in
                                        ({"status": "parsing GGUF"}, {"status": "writing manifest"}, {"status": "success"})))

    def _send(self, h, status, obj=None, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode() if obj is not None else b""
        h.send_response(status)
        h.send_header("Content-Type", "application/json"); h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD": h.wfile.write(data)
