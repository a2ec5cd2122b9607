"""GGUF export speed and memory on the built-in "small" model (about 20 M parameters).

For f16 and q8_0, each export runs in a fresh subprocess: once with `write_gguf` (lazy: one tensor
at a time) and once with an eager baseline written side by side (the whole state dict converted in
memory, then `GGUFWriter.write_tensors_to_file`, as simple converters do). Each subprocess reports
its resident memory just before the export (the baseline: interpreter, torch/transformers/gguf
imports, the tokenizer) and its peak during the export, sampled every millisecond (ru_maxrss cannot
be used: importing torch peaks higher than the export). `rss_over_disk` is (peak − baseline) ÷ model size on disk; the totals are reported too.
Prints one JSON line.

Usage: python benchmarks/export_gguf.py [--size small|tiny] [--quants f16,q8_0]
"""
import argparse, json, os, subprocess, sys, tempfile
from pathlib import Path

CHILD = r"""
import json, sys, threading, time
from pathlib import Path
import numpy as np, gguf, psutil, torch, transformers, safetensors
from finetune_nb import export as ex
proc = psutil.Process()
mode, model_dir, out, quant = sys.argv[1:5]
model_dir, out = Path(model_dir), Path(out)
# warm the code paths that allocate once (tokenizer, writer) so the baseline holds them
from transformers import AutoTokenizer
AutoTokenizer.from_pretrained(model_dir)
import gc; gc.collect()
base = proc.memory_info().rss; peak = [base]; done = threading.Event()
def sample():  # ru_maxrss cannot be used: importing torch peaks higher than the export itself
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss); time.sleep(0.001)
threading.Thread(target=sample, daemon=True).start()
t0 = time.perf_counter()
if mode == "lazy":
    ex.write_gguf(model_dir, out, quant)
else:  # eager baseline: every tensor converted and held in memory, then written in one go
    from safetensors.torch import load_file
    hf = json.loads((model_dir/"config.json").read_text())
    arch = ex.GGUF_ARCHS[hf["model_type"]]
    plan = ex.tensor_plan(model_dir, hf, arch)
    n_rows = next(e["shape"][0] for e in plan if (e["hf"] or "").endswith("embed_tokens.weight"))
    w = gguf.GGUFWriter(out, arch)
    ex.add_hparams(w, hf, arch, n_rows, ex._type_tables()[1][quant], "bench")
    ex.add_tokenizer(w, model_dir, AutoTokenizer.from_pretrained(model_dir), n_rows)
    state = {}
    for f in ex._safetensors_files(model_dir): state.update(load_file(f))
    for e in plan:
        data, qt = ex._convert(state[e["hf"]].float().numpy() if e["hf"] else e["data"], e, quant, hf, arch)
        w.add_tensor(e["gguf"], data, raw_dtype=qt)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
secs = time.perf_counter() - t0
peak[0] = max(peak[0], proc.memory_info().rss); done.set()
print(json.dumps(dict(seconds=secs, baseline_kb=base // 1024, peak_kb=peak[0] // 1024, bytes=out.stat().st_size)))
"""


def run_child(mode, model_dir, out, quant):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", CHILD, mode, str(model_dir), str(out), quant], capture_output=True, text=True, env=env)
    if p.returncode != 0: raise SystemExit(f"{mode} {quant} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="small", choices=["tiny", "small"])
    ap.add_argument("--quants", default="f16,q8_0")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from finetune_nb.tiny import make_tiny_model
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        model = make_tiny_model(d/"model", "llama", args.size)
        disk = sum(f.stat().st_size for f in model.glob("*.safetensors"))
        params = json.loads((model/"finetune_nb_builtin.json").read_text())["parameters"]
        out = dict(benchmark="export_gguf", model=f"builtin:{args.size}-llama", parameters=params, model_disk_mb=round(disk / 2**20, 1),
                   ratio_uses="rss_over_disk = (peak RSS during export - RSS just before it) / safetensors size on disk; total_rss_over_disk uses the whole peak")
        for q in args.quants.split(","):
            lazy = run_child("lazy", model, d/f"lazy-{q}.gguf", q)
            eager = run_child("eager", model, d/f"eager-{q}.gguf", q)
            assert lazy["bytes"] == eager["bytes"], "lazy and eager files differ in size"
            mb = lambda kb: round(kb / 1024, 1)
            out[q] = dict(seconds=round(lazy["seconds"], 2), eager_seconds=round(eager["seconds"], 2),
                          peak_rss_mb=mb(lazy["peak_kb"]), rss_after_imports_mb=mb(lazy["baseline_kb"]),
                          rss_above_baseline_mb=mb(lazy["peak_kb"] - lazy["baseline_kb"]),
                          rss_over_disk=round((lazy["peak_kb"] - lazy["baseline_kb"]) * 1024 / disk, 3),
                          total_rss_over_disk=round(lazy["peak_kb"] * 1024 / disk, 2),
                          eager_rss_above_baseline_mb=mb(eager["peak_kb"] - eager["baseline_kb"]),
                          eager_rss_over_disk=round((eager["peak_kb"] - eager["baseline_kb"]) * 1024 / disk, 3),
                          lazy_vs_eager_rss=round((lazy["peak_kb"] - lazy["baseline_kb"]) / max(1, eager["peak_kb"] - eager["baseline_kb"]), 3),
                          lazy_vs_eager_seconds=round(lazy["seconds"] / eager["seconds"], 2), gguf_mb=round(lazy["bytes"] / 2**20, 1))
        print(json.dumps(out))


if __name__ == "__main__":
    main()
