"""How few-shot selection scales: `select_few_shot` on 1k, 10k and 100k synthetic rows (k = 8).

Prints one JSON line: the best-of-`--repeat` wall and CPU time per size (the whole call: reading
the rows, hashing, ratings, topics, TF-IDF and the k MMR steps), the growth ratios 10k/1k and
100k/10k (goal: 100k/10k <= 12, near-linear; judged on CPU time, which other processes on a shared
machine disturb less than wall time), and, side by side in the same process, the textbook MMR that
first builds the n x n cosine-similarity matrix, at 1k and 10k (its time grows ~100x per 10x rows;
at 100k its matrix alone would take 80 GB).

    python benchmarks/select_few_shot.py [--sizes 1000 10000 100000] [--repeat 3] [--baseline-max 10000]
"""
import argparse, json, random, sys, time

import numpy as np

from finetune_nb.config import FineTuneConfig
from finetune_nb.fallback import _tfidf, read_candidates, select_few_shot

TOPICS = [f"topic{i}" for i in range(20)]
LABELS = ["good", "ok", "bad", "meh", None]


def synthetic_rows(n, seed=0):
    "n support-style rows: Zipf-distributed words from a 5,000-word vocabulary, ratings, topic tags."
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su", "da", "fo"]
    vocab = sorted({"".join(rng.choice(syll) for _ in range(rng.randint(2, 4))) for _ in range(8000)})[:5000]
    weights = [1 / (r + 1) for r in range(len(vocab))]
    def words(k): return " ".join(rng.choices(vocab, weights, k=k))
    rows = []
    for i in range(n):
        meta = {"id": f"r{i}", "rating": rng.choice(LABELS)}
        if rng.random() < 0.3: meta["topic"] = rng.choice(TOPICS)
        rows.append({"messages": [{"role": "user", "content": words(rng.randint(6, 15)) + "?"},
                                  {"role": "assistant", "content": words(rng.randint(10, 40)) + "."}], "metadata": meta})
    return rows


def dense_mmr(rows, k, lam=0.5):
    "The textbook MMR over TF-IDF: the full n x n similarity matrix first, then k greedy steps."
    cands, _ = read_candidates(rows)
    X = _tfidf([c.text for c in cands])
    S = (X @ X.T).toarray()
    rel = np.asarray(X @ np.asarray(X.mean(axis=0)).ravel()).ravel()
    chosen = [int(np.argmax(rel))]
    while len(chosen) < k:
        score = lam * rel - (1 - lam) * S[:, chosen].max(axis=1)
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    return chosen


def best_time(fn, repeat):
    "Best wall time and best CPU time (this process) of `repeat` runs of `fn`."
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time(); fn()
        wall.append(time.perf_counter() - w); cpu.append(time.process_time() - c)
    return round(min(wall), 4), round(min(cpu), 4)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--repeat", type=int, default=3, help="runs of select_few_shot per size below 100k (100k and up, and the baseline, run once)")
    ap.add_argument("--baseline-max", type=int, default=10000, help="largest size for the dense n x n baseline")
    ap.add_argument("--k", type=int, default=8)
    a = ap.parse_args(argv)
    cfg = FineTuneConfig.validate({"fallback": {"num_examples": a.k, "token_budget": 100000,
                                                "rating_mapping": {"good": 1.0, "ok": 0.6, "bad": 0.0},
                                                "target_topics": TOPICS[:5]}})
    pool = synthetic_rows(max(a.sizes))
    select_few_shot(pool[:50], cfg)  # warm up: imports (scikit-learn takes seconds) are not selection time
    out = {"k": a.k}
    for n in a.sizes:
        rows = pool[:n]
        rep = a.repeat if n < 100000 else 1
        out[f"select_s_{n}"], out[f"select_cpu_s_{n}"] = best_time(lambda: select_few_shot(rows, cfg), rep)
        if n <= a.baseline_max:
            out[f"dense_mmr_s_{n}"], _ = best_time(lambda: dense_mmr(rows, a.k), 1)
            out[f"speedup_vs_dense_{n}"] = round(out[f"dense_mmr_s_{n}"] / out[f"select_s_{n}"], 2)
    for lo, hi in zip(a.sizes, a.sizes[1:]):
        for kind in ("select", "select_cpu", "dense_mmr"):
            if f"{kind}_s_{hi}" in out and f"{kind}_s_{lo}" in out:
                out[f"ratio_{kind}_{hi}_{lo}"] = round(out[f"{kind}_s_{hi}"] / out[f"{kind}_s_{lo}"], 2)
    if {10000, 100000} <= set(a.sizes):
        out["goal_ratio_100k_10k_le_12"] = out["ratio_select_cpu_100000_10000"] <= 12
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
