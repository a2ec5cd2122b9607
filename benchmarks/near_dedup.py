"""Near-duplicate removal throughput: finetune_nb's streaming `Deduplicator` against a textbook datasketch loop.

Usage: python benchmarks/near_dedup.py [--rows 50000]
Prints one JSON line. Both run side by side on the same generated rows (short QA pairs, about 10%
of them copies of an earlier row with one word changed); the slow baseline runs on the first
--baseline-rows rows and is timed against ours on those same rows. Recall counts the copies whose
exact 5-gram Jaccard with their source reaches the threshold. The baseline is the loop
datasketch's documentation shows: a fresh `MinHash()` per row, `update()` per shingle (SHA-1), an LSH
with default weights, and the LSH candidate taken as the verdict.
"""
import argparse, json, random, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from finetune_nb.augment import Deduplicator, dedup_text

WORDS = ("adapter rank alpha dropout model layer token batch epoch loss merge quantise export weight gradient "
         "learning rate warmup schedule checkpoint memory precision tokenizer template padding sequence packing").split()

def make_pairs(n, seed=0):
    "Rows where about every 10th copies an earlier row's question and answer with one word changed; {copy: source}."
    rng = random.Random(seed)
    rows, dups = [], {}
    for i in range(n):
        if i > 10 and rng.random() < 0.1:
            k = rng.randrange(i)
            src = rows[k]["messages"]
            words = (src[0]["content"] + " \x00 " + src[1]["content"]).split()
            j = rng.randrange(len(words))
            while words[j] == "\x00": j = rng.randrange(len(words))
            words[j] = rng.choice(WORDS)
            q, a = " ".join(words).split(" \x00 ")
            dups[i] = k
        else:
            q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 16))) + "?"
            a = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 16))) + "."
        rows.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                     "metadata": {"source": "bench.jsonl", "line": i + 1}})
    return rows, dups

def shingles(ex, k=5):
    t = dedup_text(ex)
    return {t[i:i + k].encode() for i in range(max(1, len(t) - k + 1))}

def jaccard(a, b): return len(a & b) / len(a | b)

def ours(rows, threshold, mark):
    "Seconds for all rows, seconds for the first `mark` rows, dropped row indices."
    dd, dropped, t_mark = Deduplicator("near", threshold), set(), None
    t = time.perf_counter()
    for n, ex in enumerate(rows, 1):
        if dd.check(ex, n) is not None: dropped.add(n - 1)
        if n == mark: t_mark = time.perf_counter() - t
    return time.perf_counter() - t, t_mark, dropped

def baseline(rows, threshold):
    from datasketch import MinHash, MinHashLSH
    lsh, dropped = MinHashLSH(threshold=threshold, num_perm=128), set()
    t = time.perf_counter()
    for i, ex in enumerate(rows):
        m = MinHash(num_perm=128)
        for s in shingles(ex): m.update(s)
        if lsh.query(m): dropped.add(i)
        else: lsh.insert(i, m)
    return time.perf_counter() - t, dropped

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=50_000)
    p.add_argument("--baseline-rows", type=int, default=10_000, help="the slow baseline runs on this many of the same rows")
    p.add_argument("--threshold", type=float, default=0.85)
    args = p.parse_args()
    rows, planted = make_pairs(args.rows)
    # the true near duplicates: planted rows whose exact 5-gram Jaccard with their source reaches the threshold
    dups = {i for i, k in planted.items() if jaccard(shingles(rows[i]), shingles(rows[k])) >= args.threshold}
    nb = min(args.baseline_rows, args.rows)
    t_ours, t_ours_nb, d_ours = ours(rows, args.threshold, nb)
    t_base, d_base = baseline(rows[:nb], args.threshold)
    def recall(d, n=args.rows): return round(len(d & {i for i in dups if i < n}) / max(1, len([i for i in dups if i < n])), 3)
    def false_drops(d): return len(d - set(planted))  # a row that is no edit of an earlier one
    print(json.dumps({"rows": args.rows, "planted": len(planted), "true_near_duplicates": len(dups), "threshold": args.threshold,
                      "ours_rows_per_s": round(args.rows / t_ours), "baseline_rows": nb, "baseline_rows_per_s": round(nb / t_base),
                      "speedup_vs_baseline_same_rows": round(t_base / t_ours_nb, 2),
                      "ours_recall": recall(d_ours), "baseline_recall": recall(d_base, nb),
                      "ours_false_drops": false_drops(d_ours), "baseline_false_drops": false_drops(d_base)}))

if __name__ == "__main__":
    main()
