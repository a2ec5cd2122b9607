"""A local fake of the Anthropic Messages and Message Batches APIs, for tests and benchmarks.

A real HTTP server on 127.0.0.1 (a thread per connection); point the real SDK at it with
ANTHROPIC_BASE_URL=server.url. Replies are deterministic functions of the request, so a test
knows exactly which rows to expect. Faults are scripted: `script` holds (status, headers, body)
replies served before normal ones, `down` (a status) answers every message request with that
error until it is set back to None, `bad_outputs` malformed replies, `batch_hold` keeps batches
in progress, `batch_row_faults` makes chosen rows of the first batch error or expire.
A judge's request (the record_score or record_verdict tool) gets `judge(tool, prompt)` as its
verdict: by default `fake_verdict`, which prefers the answer equal to the reference; tests
script their own.
"""
import itertools, json, re, threading, time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOOL = "record_qa_pairs"
KEY = "sk-ant-test-secret-key-0123456789"  # the only key the fake accepts


def passage(prompt: str) -> str:
    m = re.search(r"<passage>\n(.*)\n</passage>", prompt, re.S)
    return m.group(1) if m else prompt


def fake_pairs(prompt: str, n: int) -> list[dict]:
    "The pairs the fake model writes for a prompt: a function of the passage, so tests can predict them."
    text = passage(prompt)
    return [{"question": f"Q{i} about {text[:40]}?", "answer": f"A{i}: {text}"} for i in range(n)]


def tag(prompt: str, name: str) -> str | None:
    "The text inside <name>...</name> of a judge prompt."
    m = re.search(rf"<{name}>\n(.*?)\n</{name}>", prompt, re.S)
    return m.group(1) if m else None


def fake_verdict(tool: str, prompt: str) -> dict:
    "A judge that knows the truth: 5 (or the win) for an answer equal to the reference, 2 (or the loss) otherwise."
    ref = tag(prompt, "reference")
    if tool == "record_score":
        right = ref is not None and tag(prompt, "answer") == ref
        return {"reason": "matches the reference" if right else "differs from the reference", "score": 5 if right else 2}
    a, b = tag(prompt, "answer_a"), tag(prompt, "answer_b")
    winner = "A" if a == ref and b != ref else "B" if b == ref and a != ref else "tie"
    return {"reason": f"answer {winner} matches the reference" if winner != "tie" else "neither is better", "winner": winner}


class FakeAnthropic:
    def __init__(self, latency: float = 0.0):
        self.latency, self.script, self.bad_outputs, self.down, self.judge = latency, [], 0, None, fake_verdict
        self.counts, self.keys_seen, self.lock = Counter(), set(), threading.Lock()
        self.batches, self.batch_sizes, self.batch_hold, self.batch_row_faults = {}, [], False, {}
        self._ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would delay the second by 40 ms
            def log_message(self, *a): pass
            def do_POST(self): fake._handle(self, "POST")
            def do_GET(self): fake._handle(self, "GET")

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 drops connections a concurrent client opens at once
            daemon_threads = True
            def handle_error(self, *a): pass  # clients closing kept-alive connections is not an error

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self): self.thread.start(); return self
    def __exit__(self, *exc): self.server.shutdown(); self.server.server_close()

    # --- replies -------------------------------------------------------------------------------
    def message(self, params: dict) -> dict:
        "A Messages API reply: the forced tool call with the fake pairs (or a judge's verdict), or a malformed reply."
        prompt, tool = params["messages"][0]["content"], params["tools"][0]
        n = tool["input_schema"]["properties"]["pairs"]["maxItems"] if tool["name"] == TOOL else 2
        with self.lock:
            bad = self.bad_outputs > 0
            self.bad_outputs -= bad
        answer = {"pairs": fake_pairs(prompt, n)} if tool["name"] == TOOL else None if bad else self.judge(tool["name"], prompt)
        content = ([{"type": "text", "text": "Sorry, I can't produce JSON for this passage."}] if bad else
                   [{"type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": tool["name"], "input": answer}])
        return {"id": f"msg_{next(self._ids)}", "type": "message", "role": "assistant", "model": params["model"],
                "content": content, "stop_reason": "end_turn" if bad else "tool_use", "stop_sequence": None,
                "usage": {"input_tokens": len(prompt) // 4, "output_tokens": 10 * n}}

    def _batch(self, bid: str) -> dict:
        b = self.batches[bid]
        ended = not self.batch_hold
        return {"id": bid, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": {"processing": 0 if ended else len(b), "succeeded": len(b) if ended else 0,
                                   "errored": 0, "canceled": 0, "expired": 0},
                "created_at": "2026-11-23T00:00:00Z", "expires_at": "2026-11-24T00:00:00Z",
                "ended_at": "2026-11-23T00:01:00Z" if ended else None, "archived_at": None,
                "cancel_initiated_at": None, "results_url": f"{self.url}/v1/messages/batches/{bid}/results" if ended else None}

    def _results(self, bid: str) -> bytes:
        lines = []
        for row in self.batches[bid]:
            fault = self.batch_row_faults.pop(row["custom_id"], None)
            if fault == "errored":
                result = {"type": "errored", "error": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}}
            elif fault:
                result = {"type": fault}
            else:
                result = {"type": "succeeded", "message": self.message(row["params"])}
            lines.append(json.dumps({"custom_id": row["custom_id"], "result": result}))
        return ("\n".join(lines) + "\n").encode()

    def _handle(self, h, method):
        body = h.rfile.read(int(h.headers.get("content-length") or 0))
        key = h.headers.get("x-api-key") or (h.headers.get("authorization") or "").removeprefix("Bearer ")  # SDK 2.x sends a Bearer token
        path = h.path.split("?")[0]
        with self.lock:
            self.keys_seen.add(key)
            self.counts[f"{method} {re.sub(r'msgbatch_[0-9]+', '{id}', path)}"] += 1
            scripted = self.script.pop(0) if path == "/v1/messages" and self.script else None
            if path == "/v1/messages" and self.down and not scripted:
                scripted = (self.down, {"retry-after-ms": "1"}, {"type": "error", "error": {"type": "api_error", "message": "the API is down"}})
        if path == "/v1/messages" and self.latency: time.sleep(self.latency)
        if scripted:
            status, headers, reply = scripted
            return self._send(h, status, reply, headers)
        if key != KEY:
            return self._send(h, 401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
        if method == "POST" and path == "/v1/messages":
            return self._send(h, 200, self.message(json.loads(body)))
        if method == "POST" and path == "/v1/messages/batches":
            rows = json.loads(body)["requests"]
            with self.lock:
                bid = f"msgbatch_{next(self._ids)}"
                self.batches[bid] = rows
                self.batch_sizes.append(len(rows))
            return self._send(h, 200, self._batch(bid))
        if method == "GET" and path == "/_counts":  # for a server in another process (the benchmark)
            return self._send(h, 200, dict(self.counts))
        m = re.fullmatch(r"/v1/messages/batches/(msgbatch_[0-9]+)(/results)?", path)
        if method == "GET" and m and m.group(1) in self.batches:
            if m.group(2):
                data = self._results(m.group(1))
                h.send_response(200); h.send_header("content-type", "application/binary")
                h.send_header("content-length", str(len(data))); h.end_headers(); h.wfile.write(data); return
            return self._send(h, 200, self._batch(m.group(1)))
        self._send(h, 404, {"type": "error", "error": {"type": "not_found_error", "message": f"{method} {path}"}})

    def _send(self, h, status, obj, headers=None):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        for k, v in (headers or {}).items(): h.send_header(k, v)
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    @property
    def batch_creations(self): return self.counts["POST /v1/messages/batches"]

    @property
    def message_requests(self): return self.counts["POST /v1/messages"]



if __name__ == "__main__":  # python tests/fake_anthropic.py LATENCY: serve until killed, print the URL first
    import sys
    with FakeAnthropic(latency=float(sys.argv[1])) as server:
        print(server.url, flush=True)
        server.thread.join()
