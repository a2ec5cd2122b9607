"""Part `stack` of gpu_proof.py: finetune_nb's trainer against bare TRL + PEFT, and QLoRA against LoRA, on one GPU.

A Llama-3.2-1B-shaped model (random init, bf16 on disk) with the built-in BPE tokenizer is trained on the same
canonical chat rows (Alpaca-like lengths) three ways, each in a fresh process so peak memory is its own:
- ours: `finetune_nb.train.train(config)` (what `finetune-nb train` runs) with the default training section
  (bfd packing, padding-free batches, loss on assistant tokens, LoRA r16/alpha 32 on all linear layers,
  activation checkpointing only if a step's activations would not fit, `auto`), sequence 2048, 8 packed sequences a step;
- bare: TRL `SFTTrainer` + PEFT with the same LoRA settings and TRL's defaults otherwise (no packing: each
  batch padded to its longest row), bf16, about the same tokens a step;
- ours_qlora: ours with `use_qlora: true` (NF4, double quantisation, bitsandbytes on CUDA).
Prints one JSON line: real tokens/s after the warm-up steps, peak GPU memory, first and last logged loss,
and the ratios ours ÷ bare and QLoRA ÷ LoRA. --tiny runs the same code on the CPU with a tiny model.
"""
import argparse, json, multiprocessing as mp, shutil, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_train import LLAMA_1B, TINY  # noqa: E402
from train_throughput import make_rows  # noqa: E402


def build_model(folder:Path, tiny:bool)->Path:
    "Save a random-init Llama of the 1B shape (or tiny) with the built-in tokenizer."
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from finetune_nb.tiny import build_tokenizer
    tok = build_tokenizer(512)
    dims = dict(TINY if tiny else LLAMA_1B); dims["vocab_size"] = max(dims["vocab_size"], len(tok))
    cfg = LlamaConfig(**dims, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    dtype = torch.float32 if tiny else torch.bfloat16
    with torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu"):
        model = LlamaForCausalLM(cfg).to(dtype)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(folder); tok.save_pretrained(folder)
    return folder


class _Clock:
    "Real tokens and seconds of the training steps after `warmup`; peak GPU memory."
    def __init__(self, warmup:int, cuda:bool): self.warmup, self.cuda, self.t, self.tokens, self.steps, self.on = warmup, cuda, 0.0, 0, 0, False

    def callback(self):
        from transformers import TrainerCallback
        clock = self
        class C(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kw): model.register_forward_pre_hook(clock.count, with_kwargs=True)
            def on_step_begin(self, args, state, control, **kw):
                clock.sync(); clock.on, clock.t0 = state.global_step >= clock.warmup, time.perf_counter()
            def on_step_end(self, args, state, control, **kw):
                clock.sync()
                if clock.on: clock.t += time.perf_counter() - clock.t0; clock.steps += 1
        return C()

    def sync(self):
        if self.cuda:
            import torch
            torch.cuda.synchronize()

    def count(self, mod, args, kwargs):
        if not (self.on and mod.training): return
        am, ids = kwargs.get("attention_mask"), kwargs.get("input_ids")
        self.tokens += int(am.sum()) if am is not None and am.dim() == 2 else ids.numel()


def run(kind:str, root:Path, model_dir:Path, steps:int, warmup:int, tiny:bool, q):
    "One training run in this child process; its figures go on `q`."
    import torch
    cuda = torch.cuda.is_available() and not tiny
    if cuda: torch.cuda.reset_peak_memory_stats()
    clock = _Clock(warmup, cuda)
    seq, packed_bs = 2048, (1 if tiny else 8)
    if kind == "bare":
        from datasets import Dataset
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer
        from finetune_nb.core import read_jsonl
        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32 if tiny else torch.bfloat16, device_map="cuda" if cuda else "cpu")
        ds = Dataset.from_list([{"messages": r["messages"]} for _, r in read_jsonl(root/"data"/"train.jsonl")])
        args = SFTConfig(output_dir=str(root/"bare"), max_steps=steps, per_device_train_batch_size=max(1, packed_bs * seq // 760),
                         bf16=cuda, use_cpu=not cuda, report_to=[], save_strategy="no", logging_steps=1, seed=42)
        tr = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock.callback()],
                        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"))
        tr.train()
        history = tr.state.log_history
    else:
        from finetune_nb.config import FineTuneConfig
        from finetune_nb.train import train
        cfg = FineTuneConfig.validate({"project": {"name": kind, "output_dir": str(root)},
                                       "model": {"model_name": str(model_dir), "use_qlora": kind == "ours_qlora"},
                                       "data": {"output_path": str(root/"data")},
                                       "training": {"device": "cpu" if tiny else "auto", "max_steps": steps, "batch_size": packed_bs,
                                                    "gradient_accumulation_steps": 1, "max_seq_length": seq, "save_steps": 10**6,
                                                    "logging_steps": 1, "report_to": ["none"]}})
        history = train(cfg, callbacks=[clock.callback()]).log_history
    losses = [h["loss"] for h in history if "loss" in h]
    q.put(dict(tokens_per_s=round(clock.tokens / clock.t, 1) if clock.t else None, timed_steps=clock.steps,
               peak_gpu_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
               first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    import torch
    from transformers import AutoTokenizer
    from finetune_nb.core import write_jsonl
    from finetune_nb.models import qlora_unavailable
    cuda = torch.cuda.is_available() and not a.tiny
    steps, warmup = (3, 1) if a.tiny else (a.steps, a.warmup)
    root = Path(tempfile.mkdtemp(prefix="gpu_stack."))
    try:
        model_dir = build_model(root/"model", a.tiny)
        rows = make_rows(AutoTokenizer.from_pretrained(model_dir), 60 if a.tiny else 1500)
        no_qlora = qlora_unavailable("cuda" if cuda else "cpu")
        kinds = ["ours", "bare"] + ([] if no_qlora else ["ours_qlora"])
        ctx, out = mp.get_context("spawn"), {}
        for kind in kinds:
            write_jsonl(root/kind/"data"/"train.jsonl", rows)
            q = ctx.Queue()
            p = ctx.Process(target=run, args=(kind, root/kind, model_dir, steps, warmup, a.tiny, q)); p.start()
            p.join()
            out[kind] = q.get() if p.exitcode == 0 else {"error": f"exit {p.exitcode}"}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    def ratio(x, y, k):
        return round(out[x][k] / out[y][k], 3) if out.get(x, {}).get(k) and out.get(y, {}).get(k) else None
    res = {"benchmark": "gpu_stack", "device": torch.cuda.get_device_name(0) if cuda else "cpu (--tiny smoke test, not a measurement)",
           "model": "tiny" if a.tiny else "llama-1b-shape", "steps": steps, "warmup_steps": warmup, **out,
           "ours_vs_bare_tokens_per_s": ratio("ours", "bare", "tokens_per_s"),
           "qlora_vs_lora_tokens_per_s": ratio("ours_qlora", "ours", "tokens_per_s"),
           "qlora_vs_lora_peak_gpu_mem": ratio("ours_qlora", "ours", "peak_gpu_mem_gb"),
           "qlora": f"skipped: {no_qlora}" if no_qlora else "ran",
           "qlora_loss_fell": (out["ours_qlora"]["last_loss"] < out["ours_qlora"]["first_loss"]) if out.get("ours_qlora", {}).get("last_loss") else None}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
