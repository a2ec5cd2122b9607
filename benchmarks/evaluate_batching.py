"""Evaluate's generation and loss against plain `model.generate`, same model, same prompts, side by side in one process.

- tokens/s of `generate_answers` (batched, left-padded greedy decoding, what `evaluate` does) ÷ tokens/s of plain
  `model.generate`, one prompt at a time with the model's own generation settings made greedy (the way a user
  would script it); both stop at the same end-of-turn tokens and count only answer tokens. Goal: >= 0.9.
- the same for batch size 1 of `generate_answers`, and the loss's batching speedup.
Each timing is the best of `--repeats` alternating runs (the machine is shared); the JSON line also gives every run.

Prints one JSON line. Usage: python benchmarks/evaluate_batching.py [--model builtin:small-llama] [--prompts 16]
[--batch-size 4] [--max-new-tokens 32] [--repeats 3] [--threads N]
The real-model case: --model /tmp/smollm2 --prompts 16 --max-new-tokens 48 --threads 1 (the SmolLM2-135M-Instruct folder
benchmarks/train_throughput.py describes)
"""
import argparse, json, os, time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="builtin:small-llama", help="model.model_name: built-in, HF folder or hub id")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4, help="evaluate's default: training.batch_size, 4")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own); 1 keeps a shared machine's load from distorting the ratios")
    a = ap.parse_args()
    import torch
    if a.threads: torch.set_num_threads(a.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from finetune_nb.evaluate import eos_ids, eval_loss, generate_answers
    from finetune_nb.models import resolve_model_path
    path = resolve_model_path(a.model)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    words = "the model reads every document and answers questions about training data with care".split()
    convs = [[{"role": "user", "content": " ".join(words[: 3 + i % 10]) + f" question {i}?"},
              {"role": "assistant", "content": " ".join(reversed(words[: 4 + i % 7]))}] for i in range(a.prompts)]
    prompts = [c[:1] for c in convs]
    stops = sorted(eos_ids(model, tok))

    def plain():
        "One prompt at a time through model.generate, greedy, stopping where evaluate stops; answer tokens counted the same way."
        n = 0
        with torch.inference_mode():
            for p in prompts:
                enc = tok.apply_chat_template(p, add_generation_prompt=True, return_tensors="pt", return_dict=True)
                out = model.generate(**enc, max_new_tokens=a.max_new_tokens, do_sample=False, eos_token_id=stops,
                                     pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else stops[0])[0, enc["input_ids"].shape[1]:].tolist()
                n += next((k for k, t in enumerate(out) if t in stops), len(out))
        return n

    ours = lambda bs: sum(x["tokens"] for x in generate_answers(model, tok, tok.chat_template, prompts, a.max_new_tokens, bs))
    loss = lambda bs: eval_loss(model, tok, tok.chat_template, convs, bs)["eval_loss"]
    runs = {k: [] for k in ("plain", "batched", "batch1", "loss1", "loss_batched")}
    tokens = {}
    ours(a.batch_size); plain()  # warm-up
    for r in range(a.repeats):  # alternate the order, keep each one's best
        for k in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            fn = dict(plain=plain, batched=lambda: ours(a.batch_size), batch1=lambda: ours(1), loss1=lambda: loss(1),
                      loss_batched=lambda: loss(a.batch_size))[k]
            t0 = time.perf_counter(); tokens[k] = fn(); runs[k].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in runs.items()}
    tps = {k: tokens[k] / best[k] for k in ("plain", "batched", "batch1")}
    one, many = generate_answers(model, tok, tok.chat_template, prompts, a.max_new_tokens, 1), \
        generate_answers(model, tok, tok.chat_template, prompts, a.max_new_tokens, a.batch_size)
    print(json.dumps(dict(
        benchmark="evaluate_batching", model=a.model, prompts=a.prompts, batch_size=a.batch_size, max_new_tokens=a.max_new_tokens,
        repeats=a.repeats, torch_threads=torch.get_num_threads(),
        generate_tokens_per_s_ratio_vs_plain_generate=round(tps["batched"] / tps["plain"], 3),
        batch1_tokens_per_s_ratio_vs_plain_generate=round(tps["batch1"] / tps["plain"], 3),
        tokens_per_s=dict(plain_generate=round(tps["plain"], 1), ours_batched=round(tps["batched"], 1), ours_batch1=round(tps["batch1"], 1)),
        answer_tokens=dict(plain_generate=tokens["plain"], ours_batched=tokens["batched"]),
        generate_speedup=round(best["batch1"] / best["batched"], 2), loss_speedup=round(best["loss1"] / best["loss_batched"], 2),
        identical_answers=[x["text"] for x in one] == [x["text"] for x in many],
        seconds={k: [round(x, 2) for x in v] for k, v in runs.items()})))


if __name__ == "__main__":
    main()
