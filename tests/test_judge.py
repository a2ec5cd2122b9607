"""The LLM judge against the real anthropic SDK and a local fake API server (real HTTP, no network).

Verdicts are scripted on the server side: a judge that knows the reference, a position-biased
judge, malformed verdicts; transport faults are real status codes.
"""
import threading

import pytest

from finetune_nb.config import JudgeConfig
from finetune_nb.judge import Judge, JudgeError, pairwise_summary, score_summary

from finetune_nb.testing import KEY, fake_verdict, tag


def q(i): return [{"role": "user", "content": f"What is {i} plus {i}?"}]
def right(i): return f"{i} plus {i} is {2 * i}."


def items(n):
    "Pairwise items where the tuned answer is right and the base answer is not."
    return [{"conversation": q(i), "reference": right(i), "answers": {"base": "I do not know.", "tuned": right(i)}}
            for i in range(n)]


def test_scores_and_both_orders_against_the_reference(fake, tmp_path):
    seen, lock = [], threading.Lock()
    def judge(tool, prompt):
        with lock: seen.append((tool, tag(prompt, "answer_a"), tag(prompt, "answer_b")))
        return fake_verdict(tool, prompt)
    fake.judge = judge
    scored = [{"conversation": q(i), "answer": a, "reference": right(i)}
              for i in range(3) for a in (right(i), "no idea")]
    with Judge(JudgeConfig(max_concurrency=4), cache=tmp_path/"judge_cache.jsonl") as j:
        scores, pairs = j.run(scored, items(3))
    assert [s["score"] for s in scores] == [5, 2] * 3 and all(s["reason"] for s in scores)
    assert [p["winner"] for p in pairs] == ["tuned"] * 3 and all(p["consistent"] for p in pairs)
    for i, p in enumerate(pairs):  # each pair was asked as (base, tuned) and as (tuned, base)
        assert [(o["a"], o["b"], o["verdict"]) for o in p["orders"]] == [("base", "tuned", "B"), ("tuned", "base", "A")]
        assert ("record_verdict", "I do not know.", right(i)) in seen
        assert ("record_verdict", right(i), "I do not know.") in seen
    s = pairwise_summary(pairs, "base", "tuned")
    assert ((s["wins"], s["losses"], s["ties"], s["win_rate"], s["agreement"], s["first_position_rate"])
            == (3, 0, 0, 1.0, 1.0, 0.5))
    assert score_summary(scores)["mean_score"] == 3.5
    assert fake.message_requests == 6 + 2 * 3 and j.usage["requests"] == 12 and j.usage["retries"] == 0
    assert j.summary()["judge"] == "anthropic:claude-sonnet-4-5" and j.summary()["rubric"].startswith("qa:")
    assert j.cost_usd > 0 and fake.keys_seen == {KEY}
    assert KEY.encode() not in (tmp_path/"judge_cache.jsonl").read_bytes()


def test_ties_and_identical_answers(fake):
    fake.judge = lambda tool, prompt: {"reason": "equally good", "winner": "tie"}
    with Judge(JudgeConfig()) as j:
        _, pairs = j.run([], [{"conversation": q(1), "answers": {"base": "2", "tuned": "two"}},
                              {"conversation": q(2), "answers": {"base": "4", "tuned": " 4 "}}])
    assert [(p["winner"], p["consistent"]) for p in pairs] == [("tie", True), ("tie", True)]
    assert pairs[1]["identical"] and fake.message_requests == 2  # identical answers need no judge
    s = pairwise_summary(pairs, "base", "tuned")
    assert (s["ties"], s["win_rate"], s["identical"], s["first_position_rate"]) == (2, 0.5, 1, None)


def test_a_position_biased_judge_decides_nothing(fake):
    fake.judge = lambda tool, prompt: {"reason": "the first answer reads better", "winner": "A"}
    with Judge(JudgeConfig()) as j:
        _, pairs = j.run([], items(4))
    assert all(p["winner"] == "tie" and p["consistent"] is False for p in pairs)
    s = pairwise_summary(pairs, "base", "tuned")
    assert (s["wins"], s["losses"], s["ties"], s["agreement"], s["first_position_rate"]) == (0, 0, 4, 0.0, 1.0)


def test_malformed_verdicts_are_retried_then_recorded_as_failures(fake, tmp_path):
    cfg, cache = JudgeConfig(output_retries=1, max_concurrency=1), tmp_path/"judge_cache.jsonl"
    item = [{"conversation": q(1), "answer": right(1), "reference": right(1)}]
    fake.bad_outputs = 1  # one reply without the tool call: asked again, then valid
    with Judge(cfg, cache=cache) as j: (s,), _ = j.run(item)
    assert (s["score"], s["attempts"], j.usage["requests"]) == (5, 2, 2)

    fake.judge = lambda tool, prompt: {"reason": "off the scale", "score": 9}  # schema-breaking every time
    item = [{"conversation": q(2), "answer": right(2)}]
    with Judge(cfg, cache=cache) as j: (s,), _ = j.run(item)
    assert s["score"] is None and s["attempts"] == 2 and "malformed verdict: field 'score'" in s["error"]
    assert '"score": 9' in s["raw"] and j.usage["failed"] == 1

    fake.bad_outputs = 2
    fake.judge = lambda tool, prompt: {"reason": "fine", "winner": "B"}
    with Judge(cfg, cache=cache) as j: _, (p,) = j.run([], items(1))
    assert p["winner"] is None and p["error"].startswith("malformed verdict: no JSON")  # one order failed: no winner
    assert pairwise_summary([p], "base", "tuned")["failed"] == 1

    before = fake.message_requests  # failures are not cached: the next run asks again
    fake.judge = lambda tool, prompt: {"reason": "right", "score": 4}
    with Judge(cfg, cache=cache) as j: (s,), _ = j.run([{"conversation": q(2), "answer": right(2)}])
    assert s["score"] == 4 and fake.message_requests == before + 1


def test_cached_rerun_makes_no_request(fake, tmp_path):
    cache = tmp_path/"judge_cache.jsonl"
    with Judge(JudgeConfig(), cache=cache) as j: first = j.run([{"conversation": q(1), "answer": "2"}], items(5))
    n = fake.message_requests
    with Judge(JudgeConfig(), cache=cache) as j: again = j.run([{"conversation": q(1), "answer": "2"}], items(5))
    assert fake.message_requests == n == 11
    assert j.usage["cached"] == 11 and j.usage["requests"] == 0 and j.cost_usd == 0 and j.provider is None
    strip = lambda runs: [[{k: v for k, v in r.items() if k != "cached"} for r in runs[0]],
                          [[{k: v for k, v in o.items() if k != "cached"} for o in p["orders"]] for p in runs[1]]]
    assert strip(again) == strip(first)
    with Judge(JudgeConfig(rubric="Brevity.\n1: long\n2: longish\n3: ok\n4: short\n5: minimal"), cache=cache) as j:
        j.run([{"conversation": q(1), "answer": "2"}])
    assert fake.message_requests == n + 1  # another rubric is another request


def test_transient_errors_are_retried_by_the_sdk(fake):
    fake.script = [(529, {}, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                   (429, {"retry-after": "0"},
                    {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})]
    with Judge(JudgeConfig(max_concurrency=1)) as j:
        (s,), _ = j.run([{"conversation": q(1), "answer": right(1), "reference": right(1)}])
    assert s["score"] == 5 and j.usage["retries"] == 2 and j.usage["http_529"] == 1 and j.usage["http_429"] == 1


def test_a_rejected_key_or_no_key_stops_the_judge(fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong-key-0000000000")
    with pytest.raises(JudgeError, match="401"), Judge(JudgeConfig(max_concurrency=2)) as j:
        j.run([{"conversation": q(i), "answer": "x"} for i in range(20)])
    assert fake.message_requests < 20  # it stopped instead of asking every item
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(JudgeError, match="ANTHROPIC_API_KEY is not set"): Judge(JudgeConfig())
