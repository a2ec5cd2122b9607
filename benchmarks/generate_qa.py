"""QA generation throughput and cache speed against a local fake Anthropic API with fixed latency.

Prints one JSON line:
- throughput_ratio: generate_qa's requests/s ÷ the ideal concurrency/latency (goal ≥ 0.9);
- bare_sdk_threads_ratio: the same for bare SDK calls on a thread pool, side by side (the ceiling of the client here);
- cached_rerun_ratio: a fully cached rerun's time ÷ the first run's (goal ≤ 0.01).
The fake server runs in its own process with HTTP keep-alive; the SDK is imported before timing.

Usage: python benchmarks/generate_qa.py [--chunks 320] [--concurrency 16] [--latency 0.2] [--repeats 3]
"""
import json, os, statistics, tempfile, time
from concurrent.futures import ThreadPoolExecutor

from _fake_api import api_args
from finetune_nb.testing import KEY, fake_anthropic_process
from finetune_nb.config import FineTuneConfig
from finetune_nb.qa import QA_SYSTEM_PROMPT, generate_qa, qa_prompt, qa_tool
import anthropic  # imported up front: finetune_nb.qa imports it lazily, and a one-off import is not throughput


def main():
    a = api_args(chunks=320)
    chunks = [{"chunk_id": f"c{i}", "text": f"Passage {i}: valve {i} opens at {i * 10} kPa.", "metadata": {"source": "m.pdf", "page": i}}
              for i in range(a.chunks)]
    ideal = a.concurrency / a.latency
    client = None
    def bare_sdk():
        "The same requests as bare SDK calls on a thread pool: what the client itself can do here."
        def ask(c):
            return client.messages.create(model="claude-haiku-4-5", max_tokens=2048, system=QA_SYSTEM_PROMPT,
                                          messages=[{"role": "user", "content": qa_prompt(c["text"], 3)}],
                                          tools=[qa_tool(3)], tool_choice={"type": "tool", "name": "record_qa_pairs"})
        t = time.perf_counter()
        with ThreadPoolExecutor(a.concurrency) as ex: list(ex.map(ask, chunks))
        return time.perf_counter() - t

    firsts, cacheds, bares = [], [], []
    # The fake API runs in its own process, as a real server would: it must not share this process's GIL.
    with fake_anthropic_process(a.latency) as (url, requests_served), tempfile.TemporaryDirectory() as d:
        os.environ.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=KEY)
        client = anthropic.Anthropic(max_retries=0)
        cfg = FineTuneConfig.validate({"data": {"langchain": {"max_concurrency": a.concurrency, "qa_pairs_per_chunk": 3}}})
        warm = [{**c, "chunk_id": "w" + c["chunk_id"], "text": "warm-up " + c["text"]} for c in chunks[:a.concurrency]]
        generate_qa(cfg, warm, out_dir=tempfile.mkdtemp(dir=d), progress=False)  # first-use costs (TLS context, SDK types) are not throughput
        for r in range(a.repeats):  # interleaved, medians reported: the machine is shared
            out, served = tempfile.mkdtemp(dir=d), requests_served()
            t = time.perf_counter()
            res = generate_qa(cfg, chunks, out_dir=out, progress=False)
            firsts.append(time.perf_counter() - t)
            assert res.n_examples == 3 * a.chunks and requests_served() - served == a.chunks
            t = time.perf_counter()
            again = generate_qa(cfg, chunks, out_dir=out, progress=False)
            cacheds.append(time.perf_counter() - t)
            assert again.n_cached == a.chunks and requests_served() - served == a.chunks  # no request
            bares.append(bare_sdk())

    first, cached, bare = (statistics.median(x) for x in (firsts, cacheds, bares))
    print(json.dumps({"chunks": a.chunks, "concurrency": a.concurrency, "latency_s": a.latency, "repeats": a.repeats,
                      "requests_per_s": round(a.chunks / first, 2), "ideal_requests_per_s": ideal,
                      "throughput_ratio": round(a.chunks / first / ideal, 3),
                      "bare_sdk_threads_ratio": round(a.chunks / bare / ideal, 3),
                      "first_run_s": round(first, 3), "cached_run_s": round(cached, 4),
                      "cached_rerun_ratio": round(cached / first, 4)}))

if __name__ == "__main__":
    main()
