"""LoRA training throughput and MFU on one GPU: a ~1B-parameter Llama (random init), bf16, sequence 2048.

The model is the Llama-3.2-1B shape (16 layers, 2048 wide, 8192 MLP, 32 heads / 8 KV heads, 128,256 vocab)
built from its config, so nothing is downloaded. LoRA r16 (alpha 32) on all linear layers, packed
sequences of exactly 2048 tokens (padding-free; FlashAttention 2 when flash-attn is installed, else FlashAttention 4
when flash-attn-4 is (pip wheels, Hopper and Blackwell), else sdpa; or --attn),
gradient checkpointing on (off with --no-checkpointing), the same SFTTrainer/PEFT stack `finetune_nb.train` uses.
With sdpa, the padding-free batch is one flattened row (batch x 2048 tokens) under a dense block-diagonal
mask, so attention does batch-size times the work it needs: an sdpa MFU understates the stack. Use a
FlashAttention kernel for the measurement (`finetune_nb.train` itself bin-packs only with one).

FLOPs counted per trained token (the PaLM appendix B convention peers report):
    model_flops = 6 * N + 12 * L * d * S
N = parameters of the base model excluding embeddings (the tied input embedding does no matmul;
    the lm_head does, so it is counted), L = layers, d = hidden size, S = sequence length (attention,
    causal masking not discounted, as in PaLM). With LoRA the frozen weights get no weight gradient,
    so the work actually needed is closer to 4 * N + 12 * L * d * S; `mfu_lora` reports that variant.
    Recomputation under gradient checkpointing is not counted (that would be HFU).
    MFU = model_flops * tokens_per_s / peak, peak = 989e12 (H100 SXM dense bf16; override with --peak-tflops).

Prints one JSON line: tokens/s, peak GPU memory, MFU, and the ratio to a side-by-side run with TRL's
defaults on the same model (no packing: rows padded per batch), when --baseline is given.
Without CUDA it exits with status 2 and a message, unless --tiny (a 2-layer, 64-wide model in fp32 on
the CPU: a smoke test of this code path, not a measurement).
"""
import argparse, json, random, sys, time


LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0, tie_word_embeddings=True)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=512, max_position_embeddings=2048, tie_word_embeddings=True)


def model_flops_per_token(cfg, n_params, seq, lora=False):
    "6N (or 4N with frozen base weights) + 12·L·d·S."
    return (4 if lora else 6) * n_params + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq


def synthetic_rows(n, seq, vocab, seed=0):
    "Token rows of Alpaca-like lengths (60-1300), enough to pack into full `seq`-token sequences."
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        L = rng.randint(60, 200) if rng.random() < 0.85 else min(1300, 200 + int(rng.expovariate(1 / 350)))
        ids = [rng.randrange(3, vocab) for _ in range(L)]
        rows.append({"input_ids": ids, "labels": ids[:]})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5, help="steps excluded from the timing")
    ap.add_argument("--batch-size", type=int, default=8, help="packed 2048-token sequences per step")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--no-checkpointing", action="store_true")
    ap.add_argument("--baseline", action="store_true", help="also run TRL defaults (no packing) side by side")
    ap.add_argument("--attn", default="auto", choices=["auto", "flash_attention_2", "flash_attention_4", "sdpa"],
                    help="attention kernel; auto takes the first of FlashAttention 2, 4 that is installed, else sdpa")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test of the code path with a tiny model")
    a = ap.parse_args()
    import torch
    if not torch.cuda.is_available() and not a.tiny:
        print("gpu_train.py needs a CUDA GPU (none is visible); run it on a GPU machine, or pass --tiny for a CPU smoke test "
              "of the code path", file=sys.stderr)
        sys.exit(2)
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback
    from transformers.utils.import_utils import is_flash_attn_2_available, is_flash_attn_4_available
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available() and not a.tiny
    dtype = torch.bfloat16 if cuda else torch.float32
    seq = min(a.seq, 256) if a.tiny else a.seq
    steps, warmup = (3, 1) if a.tiny else (a.steps, a.warmup)
    attn = a.attn if a.attn != "auto" else next((k for k, ok in (("flash_attention_2", is_flash_attn_2_available),
                                                                  ("flash_attention_4", is_flash_attn_4_available)) if cuda and ok()), "sdpa")
    cfg = LlamaConfig(**(TINY if a.tiny else LLAMA_1B))
    rows = synthetic_rows(max(200, a.batch_size * seq * (steps + 2) // 150), seq, cfg.vocab_size)

    def one(packed):
        "Train `steps` steps; tokens/s over the steps after `warmup`."
        torch.manual_seed(0)
        with torch.device("cuda" if cuda else "cpu"):
            model = LlamaForCausalLM(cfg).to(dtype)
        model.set_attn_implementation(attn)
        n_params = sum(p.numel() for p in model.parameters())
        n_matmul = n_params - model.model.embed_tokens.weight.numel() + model.lm_head.weight.numel() * cfg.tie_word_embeddings
        clock = dict(t=0.0, steps=0, tokens=0, on=False)
        class Clock(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if cuda: torch.cuda.synchronize()
                clock["on"], clock["t0"] = state.global_step >= warmup, time.perf_counter()
            def on_step_end(self, args, state, control, **kw):
                if cuda: torch.cuda.synchronize()
                if clock["on"]: clock["t"] += time.perf_counter() - clock["t0"]; clock["steps"] += 1
        def count(mod, args, kwargs):  # real (non-padding) tokens of each training forward
            if clock["on"] and mod.training:
                am = kwargs.get("attention_mask")
                clock["tokens"] += int(am.sum()) if am is not None and am.dim() == 2 else kwargs["input_ids"].numel()
        # the baseline's rows per step: a quarter of the packed run's tokens on average, so padding to the longest fits in memory
        bs = a.batch_size if packed else max(1, a.batch_size * seq // 760)
        args = SFTConfig(output_dir="/tmp/gpu_train_bench", max_steps=steps, per_device_train_batch_size=bs, learning_rate=2e-4,
                         bf16=cuda, use_cpu=not cuda, report_to=[], save_strategy="no", logging_steps=10**6, seed=0,
                         activation_checkpointing=not a.no_checkpointing, activation_checkpointing_kwargs={"use_reentrant": False},
                         max_length=seq, packing=packed, packing_strategy="bfd")
        if cuda: torch.cuda.reset_peak_memory_stats()
        tr = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=_tokenizer(),
                        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"),
                        callbacks=[Clock()])
        tr.model.register_forward_pre_hook(count, with_kwargs=True)
        tr.train()
        tps = clock["tokens"] / clock["t"]
        out = dict(tokens_per_s=round(tps, 1), step_s=round(clock["t"] / clock["steps"], 3), params=n_params, rows_per_step=bs if not packed else None,
                   peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None)
        if cuda:
            out["mfu"] = round(model_flops_per_token(cfg, n_matmul, seq) * tps / (a.peak_tflops * 1e12), 4)
            out["mfu_lora"] = round(model_flops_per_token(cfg, n_matmul, seq, lora=True) * tps / (a.peak_tflops * 1e12), 4)
        del tr, model
        if cuda: torch.cuda.empty_cache()
        return out

    res = {"benchmark": "gpu_train", "device": torch.cuda.get_device_name(0) if cuda else "cpu (--tiny smoke test, not a measurement)",
           "model": "tiny" if a.tiny else "llama-1b-shape", "dtype": str(dtype).removeprefix("torch."), "attn": attn, "seq": seq,
           "batch_size": a.batch_size, "steps": steps, "ours": one(packed=True)}
    if a.baseline:
        res["baseline_trl_defaults"] = one(packed=False)
        res["tokens_per_s_ratio"] = round(res["ours"]["tokens_per_s"] / res["baseline_trl_defaults"]["tokens_per_s"], 3)
    print(json.dumps(res))


def _tokenizer():
    "A tokenizer SFTTrainer accepts; the data is already token ids, so only its pad id (0) is used."
    from finetune_nb.tiny import build_tokenizer
    return build_tokenizer(512)


if __name__ == "__main__":
    main()
