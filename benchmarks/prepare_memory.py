"""Peak memory and time of `prepare_data` on ONE big text file at 1x and 10x its size (issue 15, item 9), each run in a
fresh subprocess, peak RSS read from VmHWM as benchmarks/_rss.py does. Prints ONE JSON line.

    python benchmarks/prepare_memory.py               # 1x = 20 MB, 10x = 200 MB (about 10 minutes on 2 idle cores)
    python benchmarks/prepare_memory.py --mb 2        # a smoke run: 2 MB and 20 MB
    python benchmarks/prepare_memory.py --tokenizer   # also count tokens with the built-in tokenizer, as `finetune-nb prepare-data` does

The whole stage runs with the default config: recursive chunks of 1000 characters, direct-mode examples, near-duplicate
removal, the split, dataset_info.json. The text is English-like: sentences of 8-25 words drawn with Zipf frequencies from
20,000 made-up words. (The 50-word vocabulary of benchmarks/prepare_data.py makes every chunk a near-duplicate candidate of
dozens of others, which no real corpus does; near-dedup then costs about half as much again.)

Figures: peak RSS at 1x and 10x and their ratio (goal <= 1.2), seconds and MB/s at each size and the time ratio (10 is
linear), the rows written, and how the validation split was made (one file is one group, so it is split in sections).
"""
import argparse, json, os, random, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _rss import own_peak_kb

def _vocabulary(rng, n:int=20_000)->list[str]:
    "`n` distinct made-up words of one to four syllables."
    syl = [a + b for a in "b c d f g h j k l m n p r s t v w z st tr pl ch sh th".split() for b in "a e i o u ai ea ou io".split()]
    words = dict.fromkeys("".join(rng.choice(syl) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))) for _ in range(3 * n))
    return list(words)[:n]

def write_text(path:Path, n_bytes:int, seed:int=0)->int:
    "Write about `n_bytes` of English-like paragraphs to `path` (streamed); returns the size."
    rng, npr = random.Random(seed), np.random.default_rng(seed)
    words = _vocabulary(rng)
    p = 1 / np.arange(1, len(words) + 1) ** 1.1; p /= p.sum()
    size = 0
    with open(path, "w") as f:
        while size < n_bytes:
            ids = npr.choice(len(words), size=int(npr.integers(60, 200)), p=p)
            cuts = np.cumsum(npr.integers(8, 25, size=len(ids)))
            sents = [" ".join(words[w] for w in ids[a:b]).capitalize() + "." for a, b in zip(np.r_[0, cuts], cuts) if a < len(ids)]
            para = " ".join(sents) + "\n\n"
            f.write(para); size += len(para)
    return path.stat().st_size

def run_once(text:Path, out:Path, tokenizer:bool)->dict:
    "prepare_data on the folder holding `text`, in this process (a fresh one: see `measure`)."
    from finetune_nb.config import FineTuneConfig
    from finetune_nb.dataset import prepare_data
    cfg = FineTuneConfig.validate({"project": {"output_dir": str(out), "name": "bench"}, "data": {"input_path": str(text.parent)}})
    tok = None
    if tokenizer:
        from finetune_nb.models import load_tokenizer
        tok = load_tokenizer(cfg)
    t = time.perf_counter()
    res = prepare_data(cfg, tok, progress=False)
    c = res.info["counts"]
    return {"seconds": round(time.perf_counter() - t, 1), "peak_rss_mb": round(own_peak_kb() / 1024, 1), "chunks": c["chunks"],
            "train": c["train"], "validation": c["validation"], "split": res.info["split"]["by"]}

def measure(text:Path, out:Path, tokenizer:bool)->dict:
    "`run_once` in a fresh interpreter, so the peak is this size's alone."
    cmd = [sys.executable, __file__, "--run", str(text), str(out)] + (["--tokenizer"] if tokenizer else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode: raise SystemExit(f"benchmark run failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=20, help="size of the 1x file in MB (the 10x file is ten times that)")
    ap.add_argument("--tokenizer", action="store_true", help="count tokens with the built-in tokenizer (loads torch: a larger, fixed base)")
    ap.add_argument("--run", nargs=2, metavar=("TEXT", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run:
        print(json.dumps(run_once(Path(a.run[0]), Path(a.run[1]), a.tokenizer))); return
    with tempfile.TemporaryDirectory() as d:
        d, res = Path(d), {}
        for scale in (1, 10):
            (d / f"in{scale}").mkdir()
            mb = write_text(d / f"in{scale}" / "book.txt", int(a.mb * scale * 1e6), seed=scale) / 1e6
            res[scale] = {"mb": round(mb, 1), **measure(d / f"in{scale}" / "book.txt", d / f"out{scale}", a.tokenizer)}
            (d / f"in{scale}" / "book.txt").unlink()
        one, ten = res[1], res[10]
        print(json.dumps({
            "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 1), "tokenizer": a.tokenizer,
            "mb_1x": one["mb"], "mb_10x": ten["mb"], "peak_rss_mb_1x": one["peak_rss_mb"], "peak_rss_mb_10x": ten["peak_rss_mb"],
            "rss_ratio_10x_over_1x": round(ten["peak_rss_mb"] / one["peak_rss_mb"], 3),
            "seconds_1x": one["seconds"], "seconds_10x": ten["seconds"], "time_ratio_10x_over_1x": round(ten["seconds"] / one["seconds"], 2),
            "mb_per_s_1x": round(one["mb"] / one["seconds"], 2), "mb_per_s_10x": round(ten["mb"] / ten["seconds"], 2),
            "rows_1x": one["train"] + one["validation"], "rows_10x": ten["train"] + ten["validation"],
            "validation_1x": one["validation"], "validation_10x": ten["validation"], "split": ten["split"]}))

if __name__ == "__main__":
    main()
