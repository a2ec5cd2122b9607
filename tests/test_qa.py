"""QA generation against the real anthropic SDK and a local fake API server (no network).

Faults are real: HTTP status codes and headers from a server on 127.0.0.1, malformed model
replies, a generation subprocess killed with SIGKILL.
"""
import json, signal, subprocess, sys, time
from pathlib import Path

import pytest

from finetune_nb.config import FineTuneConfig
from finetune_nb.core import QAGenerationError, read_jsonl
from finetune_nb.qa import generate_qa

from finetune_nb.testing import KEY, fake_pairs

N_PAIRS = 2


def chunks(n):
    return [{"chunk_id": f"c{i:03d}", "text": f"Passage {i}: the valve {i} opens at {i * 10} kPa.",
             "metadata": {"source": "manual.pdf", "page": i + 1, "start_line": None, "chunk_index": i}} for i in range(n)]


def config(tmp_path, **lc):
    "A config whose run folder is tmp_path/runs/t, and its YAML file (for subprocesses)."
    raw = {"project": {"name": "t", "output_dir": str(tmp_path / "runs")},
           "data": {"langchain": {"qa_generation_enabled": True, "qa_pairs_per_chunk": N_PAIRS, **lc}}}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(raw))
    return FineTuneConfig.from_yaml(path)


def write_chunks(cfg, rows):
    d = cfg.run_dir / "data"
    d.mkdir(parents=True, exist_ok=True)
    (d / "chunks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def rows(path):
    return [r for _, r in read_jsonl(path)]


def expected(rows_in):
    "Every (chunk_id, pair index, question, answer) the fake model writes for these chunks."
    return sorted((c["chunk_id"], i, p["question"], p["answer"])
                  for c in rows_in for i, p in enumerate(fake_pairs(f"<passage>\n{c['text']}\n</passage>", N_PAIRS)))


def got(examples):
    return sorted((e["metadata"]["chunk_id"], e["metadata"]["qa_pair_index"], e["messages"][-2]["content"], e["messages"][-1]["content"])
                  for e in examples)


def assert_key_absent(folder):
    files = [p for p in Path(folder).rglob("*") if p.is_file()]
    assert files
    leaks = [str(p) for p in files if KEY.encode() in p.read_bytes()]
    assert not leaks, f"API key written to {leaks}"


def test_examples_keep_provenance_and_cached_rerun_makes_no_request(fake, tmp_path):
    cfg = config(tmp_path, qa_example_system_prompt="You answer questions about the valve manual.")
    data = chunks(3)
    res = generate_qa(cfg, data, progress=False)
    ex = rows(res.examples_path)
    assert (res.n_examples, res.n_failed, res.n_generated, res.n_cached) == (6, 0, 3, 0)
    assert got(ex) == expected(data)
    e = ex[0]
    assert [m["role"] for m in e["messages"]] == ["system", "user", "assistant"]
    assert {k: e["metadata"][k] for k in ("source", "page", "chunk_id", "qa_model", "qa_provider")} == \
        {"source": "manual.pdf", "page": 1, "chunk_id": "c000", "qa_model": "claude-haiku-4-5", "qa_provider": "anthropic"}
    assert res.usage["requests"] == 3 and res.usage["retries"] == 0 and res.cost_usd > 0
    assert fake.message_requests == 3 and fake.keys_seen == {KEY}
    first = res.examples_path.read_bytes()

    again = generate_qa(cfg, data, progress=False)
    assert fake.message_requests == 3  # everything cached: no request
    assert (again.n_cached, again.n_generated, again.cost_usd) == (3, 0, 0)
    assert again.cost_usd_dataset == res.cost_usd
    assert again.examples_path.read_bytes() == first
    assert json.loads((cfg.run_dir / "data" / "qa_summary.json").read_text())["n_examples"] == 6
    assert_key_absent(tmp_path)


def test_529_then_500_then_200_succeeds_with_retries_counted(fake, tmp_path):
    fast = {"retry-after-ms": "5"}
    fake.script = [(529, fast, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                   (500, fast, {"type": "error", "error": {"type": "api_error", "message": "Internal error"}})]
    res = generate_qa(config(tmp_path), chunks(1), progress=False)
    assert res.n_examples == N_PAIRS and res.n_failed == 0
    assert (res.usage["retries"], res.usage["http_529"], res.usage["http_500"], res.usage["http_200"]) == (2, 1, 1, 1)
    assert fake.message_requests == 3


def test_429_retry_after_is_honoured(fake, tmp_path, monkeypatch):
    import anthropic._base_client as sdk
    slept = []
    monkeypatch.setattr(sdk.time, "sleep", slept.append)  # the SDK's client waits with time.sleep
    fake.script = [(429, {"retry-after": "7"}, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})]
    res = generate_qa(config(tmp_path), chunks(1), progress=False)
    assert slept == [7.0]
    assert res.n_examples == N_PAIRS and res.usage["http_429"] == 1 and res.usage["retries"] == 1


def test_401_fails_fast_with_a_hint(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong-key-000000000000")
    cfg = config(tmp_path, max_concurrency=1, qa_max_retries=4)
    t = time.monotonic()
    with pytest.raises(QAGenerationError, match="401") as e:
        generate_qa(cfg, chunks(5), progress=False)
    assert "ANTHROPIC_API_KEY" in e.value.hint
    assert fake.message_requests == 1 and time.monotonic() - t < 5  # no retry, no other chunk asked
    assert not (cfg.run_dir / "data" / "qa.jsonl").exists()


def test_missing_key_fails_before_any_work(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    cfg = config(tmp_path)
    with pytest.raises(QAGenerationError, match="ANTHROPIC_API_KEY is not set"):
        generate_qa(cfg, chunks(2), progress=False)
    assert sum(fake.counts.values()) == 0 and not cfg.run_dir.exists()


def test_malformed_output_is_retried_then_recorded_and_retried_next_run(fake, tmp_path):
    cfg = config(tmp_path, qa_output_retries=2)
    fake.bad_outputs = 3
    res = generate_qa(cfg, chunks(1), progress=False)
    assert (res.n_examples, res.n_failed) == (0, 1) and fake.message_requests == 3
    assert rows(res.examples_path) == []
    (f,) = rows(res.failures_path)
    assert f["chunk_id"] == "c000" and f["attempts"] == 3 and f["reason"].startswith("invalid output")
    assert "can't produce JSON" in f["raw"] and f["source"] == "manual.pdf"

    fake.bad_outputs = 1  # one more bad reply, then a good one: the re-ask succeeds
    res = generate_qa(cfg, chunks(1), progress=False)
    assert (res.n_examples, res.n_failed) == (N_PAIRS, 0) and fake.message_requests == 5
    assert rows(res.failures_path) == []
    assert_key_absent(tmp_path)


def _run_until(cmd, done, timeout=60):
    "Start `cmd`; once `done()` is true, SIGKILL it. Fails if it exits first."
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    end = time.monotonic() + timeout
    while not done():
        if p.poll() is not None: pytest.fail(f"generation exited before the kill: {p.stdout.read().decode()}")
        if time.monotonic() > end: p.kill(); pytest.fail("generation made no progress")
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    assert p.returncode == -signal.SIGKILL


GENERATE = "import sys; from finetune_nb.config import FineTuneConfig; from finetune_nb.qa import generate_qa; " \
           "generate_qa(FineTuneConfig.from_yaml(sys.argv[1]), progress=False)"


def test_sigkill_mid_run_then_rerun_gives_exactly_the_expected_rows(fake, tmp_path):
    fake.latency = 0.1  # 40 chunks, 2 at a time: seconds of margin for the kill on a busy machine
    cfg = config(tmp_path, max_concurrency=2)
    data = chunks(40)
    write_chunks(cfg, data)
    cache = cfg.run_dir / "data" / "qa_cache.jsonl"
    complete = lambda: cache.read_bytes().count(b"\n") if cache.exists() else 0  # a line cut by the kill is not a result
    _run_until([sys.executable, "-c", GENERATE, str(cfg._source)], lambda: complete() >= 6)
    cached = complete()
    assert 6 <= cached < 40 and not (cfg.run_dir / "data" / "qa.jsonl").exists()

    before = fake.message_requests
    res = generate_qa(cfg, progress=False)  # reads <run>/data/chunks.jsonl
    assert fake.message_requests - before == 40 - cached  # only what was missing
    ex = rows(res.examples_path)
    assert len(ex) == 40 * N_PAIRS and got(ex) == expected(data)  # no duplicate, none missing
    assert (res.n_cached, res.n_generated, res.n_failed) == (cached, 40 - cached, 0)
    assert_key_absent(tmp_path)


def test_batch_mode_resumes_without_resubmitting_and_requeues_failed_rows(fake, tmp_path):
    fake.batch_hold = True
    cfg = config(tmp_path, qa_batch_mode=True, qa_batch_poll_seconds=0.05)
    data = chunks(5)
    write_chunks(cfg, data)
    state = cfg.run_dir / "data" / "qa_batches.json"
    _run_until([sys.executable, "-c", GENERATE, str(cfg._source)],
               lambda: state.exists() and fake.counts["GET /v1/messages/batches/{id}"] >= 2)
    assert fake.batch_creations == 1
    (saved,) = json.loads(state.read_text())["batches"]
    assert len(saved["keys"]) == 5

    fake.batch_hold = False
    fake.batch_row_faults = {saved["keys"][0]: "errored", saved["keys"][1]: "expired"}
    res = generate_qa(cfg, progress=False)
    assert fake.batch_creations == 2 and fake.batch_sizes == [5, 2]  # resumed, then only the failed rows
    assert fake.message_requests == 0
    assert got(rows(res.examples_path)) == expected(data) and res.n_failed == 0
    assert json.loads(state.read_text())["batches"] == []
    assert res.batch and res.usage["batch_rows"] == 5 and res.usage["batches"] == 1
    assert res.cost_usd == pytest.approx(0.5 * (res.usage["batch_input_tokens"] * 1 + res.usage["batch_output_tokens"] * 5) / 1e6)
    assert_key_absent(tmp_path)


def test_chunks_file_errors_name_the_line(fake, tmp_path):
    cfg = config(tmp_path)
    write_chunks(cfg, [{"chunk_id": "a", "text": "fine"}, {"chunk_id": "b"}])
    with pytest.raises(Exception, match=r"chunks.jsonl:2: field 'text'"):
        generate_qa(cfg, progress=False)
    assert fake.message_requests == 0


def test_cache_cut_off_mid_line_is_repaired_and_the_chunk_asked_again(fake, tmp_path):
    cfg = config(tmp_path)
    data = chunks(4)
    generate_qa(cfg, data, progress=False)
    cache = cfg.run_dir / "data" / "qa_cache.jsonl"
    cache.write_bytes(cache.read_bytes()[:-25])  # the last result torn, as a kill mid-write leaves it
    res = generate_qa(cfg, data, progress=False)
    assert fake.message_requests == 5 and (res.n_generated, res.n_cached) == (1, 3)
    assert got(rows(res.examples_path)) == expected(data)
    assert cache.read_bytes().count(b"\n") == 4


@pytest.mark.parametrize("headers", [{}, {"content-type": "text/html"}])
def test_a_reply_that_is_not_json_fails_that_chunk_only(fake, tmp_path, headers):
    "A proxy's HTML page with status 200: the SDK does not retry it; the chunk is recorded, the others go on."
    fake.script = [(200, headers, b"<html><body>502 Bad Gateway (proxy)</body></html>")]
    res = generate_qa(config(tmp_path, max_concurrency=1), chunks(3), progress=False)
    assert (res.n_examples, res.n_failed) == (2 * N_PAIRS, 1)
    (f,) = rows(res.failures_path)
    assert f["chunk_id"] == "c000" and "not JSON" in f["reason"] and "502 Bad Gateway (proxy)" in f["raw"]
    assert f["attempts"] == 1 and fake.message_requests == 3


def test_a_reply_that_is_json_but_not_a_message_fails_that_chunk_only(fake, tmp_path):
    fake.script = [(200, {}, {"status": "ok", "detail": "maintenance"})]
    res = generate_qa(config(tmp_path, max_concurrency=1), chunks(2), progress=False)
    (f,) = rows(res.failures_path)
    assert "JSON but not a message" in f["reason"] and "maintenance" in f["raw"] and res.n_examples == N_PAIRS


def test_failure_file_counts_the_requests_really_sent(fake, tmp_path):
    "Counted on the wire: the SDK's retries included, whatever qa_max_retries says the most could be."
    fast = {"retry-after-ms": "1"}
    fake.script = [(502, fast, b"<html>bad gateway</html>")] * 3 + [(503, fast, {"type": "error", "error": {"type": "api_error", "message": "x"}})]
    res = generate_qa(config(tmp_path, max_concurrency=1, qa_max_retries=2), chunks(2), progress=False)
    (f,) = rows(res.failures_path)
    assert (f["chunk_id"], f["attempts"], f["asks"]) == ("c000", 3, 1) and "502" in f["reason"]
    assert fake.message_requests == 3 + 2 and res.usage["http_attempts"] == 5 and res.usage["retries"] == 3


def test_attempts_without_any_response_are_counted_too(tmp_path, monkeypatch):
    "A server that is not there: no response ever arrives, yet every attempt is counted."
    import socket
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    res = generate_qa(config(tmp_path, qa_max_retries=1), chunks(2), progress=False)
    fails = rows(res.failures_path)
    assert [f["attempts"] for f in fails] == [2, 2] and all("connection failed" in f["reason"] for f in fails)
    assert res.usage["http_attempts"] == 4 and not any(k.startswith("http_") and k[5:].isdigit() for k in res.usage)
