"""Judge throughput and cache against a local fake Anthropic API with fixed latency.

Prints one JSON line:
- throughput_ratio: the judge's requests/s ÷ the ideal concurrency/latency (goal ≥ 0.9);
- bare_sdk_threads_ratio: the same for bare SDK calls on a thread pool, side by side (the ceiling of the client here);
- cached_rerun_requests: requests a fully cached rerun sent (goal 0), and cached_rerun_ratio its time ÷ the first run's.
Pairwise items (two requests each: both orders) and absolute items are asked together, as evaluation does.
The fake server runs in its own process with HTTP keep-alive; the SDK is imported before timing.

Usage: python benchmarks/judge.py [--pairs 120] [--answers 80] [--concurrency 16] [--latency 0.2] [--repeats 3]
"""
import json, os, statistics, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _fake_api import api_args
from finetune_nb.testing import KEY, fake_anthropic_process
from finetune_nb.config import JudgeConfig
from finetune_nb.judge import JUDGE_SYSTEM, RUBRICS, Judge, judge_prompt, judge_tool
import anthropic  # imported up front: finetune_nb.qa imports it lazily, and a one-off import is not throughput


def main():
    a = api_args(pairs=120, answers=80)
    n_requests = 2 * a.pairs + a.answers
    ideal = a.concurrency / a.latency
    def work(tag):
        q = lambda i: [{"role": "user", "content": f"{tag} question {i}: what is {i} plus {i}?"}]
        return ([{"conversation": q(i), "answer": f"{2 * i}", "reference": f"{2 * i}"} for i in range(a.answers)],
                [{"conversation": q(i), "reference": f"{2 * i}", "answers": {"base": "no idea", "tuned": f"{2 * i}"}} for i in range(a.pairs)])
    client = None
    def bare_sdk(scored, pairs):
        "The same requests as bare SDK calls on a thread pool: what the client itself can do here."
        prompts = [("absolute", judge_prompt("absolute", RUBRICS["qa"], s["conversation"], [s["answer"]], s["reference"])) for s in scored]
        prompts += [("pairwise", judge_prompt("pairwise", RUBRICS["qa"], p["conversation"], ts, p["reference"]))
                    for p in pairs for ts in (list(p["answers"].values()), list(p["answers"].values())[::-1])]
        def ask(kp):
            tool = judge_tool(kp[0])
            return client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, system=JUDGE_SYSTEM, messages=[{"role": "user", "content": kp[1]}],
                                          tools=[tool], tool_choice={"type": "tool", "name": tool["name"]})
        t = time.perf_counter()
        with ThreadPoolExecutor(a.concurrency) as ex: list(ex.map(ask, prompts))
        return time.perf_counter() - t

    firsts, cacheds, bares, rerun_requests = [], [], [], []
    with fake_anthropic_process(a.latency) as (url, requests_served), tempfile.TemporaryDirectory() as d:
        os.environ.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=KEY)
        client = anthropic.Anthropic(max_retries=0)
        jc = JudgeConfig(max_concurrency=a.concurrency)
        with Judge(jc) as j: j.run(*work("warm-up")[0:1])  # first-use costs (TLS context, SDK types) are not throughput
        for r in range(a.repeats):  # interleaved, medians reported: the machine is shared
            scored, pairs = work(f"repeat {r}")
            cache, served = Path(d)/f"cache-{r}.jsonl", requests_served()
            t = time.perf_counter()
            with Judge(jc, cache=cache) as j: scores, verdicts = j.run(scored, pairs)
            firsts.append(time.perf_counter() - t)
            assert all(s["score"] == 5 for s in scores) and all(v["winner"] == "tuned" for v in verdicts)
            assert requests_served() - served == n_requests
            t = time.perf_counter()
            with Judge(jc, cache=cache) as j: j.run(scored, pairs)
            cacheds.append(time.perf_counter() - t)
            rerun_requests.append(requests_served() - served - n_requests)
            bares.append(bare_sdk(scored, pairs))

    first, cached, bare = (statistics.median(x) for x in (firsts, cacheds, bares))
    print(json.dumps({"requests": n_requests, "pairs": a.pairs, "answers": a.answers, "concurrency": a.concurrency, "latency_s": a.latency,
                      "repeats": a.repeats, "requests_per_s": round(n_requests / first, 2), "ideal_requests_per_s": ideal,
                      "throughput_ratio": round(n_requests / first / ideal, 3), "bare_sdk_threads_ratio": round(n_requests / bare / ideal, 3),
                      "first_run_s": round(first, 3), "cached_run_s": round(cached, 4), "cached_rerun_ratio": round(cached / first, 4),
                      "cached_rerun_requests": max(rerun_requests)}))

if __name__ == "__main__":
    main()
