"""Batched, left-padded generation and loss (what `evaluate` does) against one prompt at a time, same model, same prompts.

Prints one JSON line: speedups of batching (ratios against batch size 1) and whether the answers are identical.
Usage: python benchmarks/evaluate_batching.py [--prompts 16] [--batch-size 8] [--max-new-tokens 32]
"""
import argparse, json, os, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    a = ap.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from finetune_nb.evaluate import eval_loss, generate_answers
    from finetune_nb.models import make_tiny_model
    path = make_tiny_model(Path(tempfile.mkdtemp()) / "small", size="small")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    words = "the model reads every document and answers questions about training data with care".split()
    convs = [[{"role": "user", "content": " ".join(words[: 3 + i % 10]) + f" question {i}?"},
              {"role": "assistant", "content": " ".join(reversed(words[: 4 + i % 7]))}] for i in range(a.prompts)]
    prompts = [c[:1] for c in convs]

    def timed(fn):
        t0 = time.perf_counter(); out = fn(); return out, time.perf_counter() - t0

    gen = lambda bs: generate_answers(model, tok, tok.chat_template, prompts, a.max_new_tokens, bs)
    loss = lambda bs: eval_loss(model, tok, tok.chat_template, convs, bs)
    gen(a.batch_size)  # warm-up
    one, t_gen1 = timed(lambda: gen(1))
    many, t_genb = timed(lambda: gen(a.batch_size))
    l1, t_loss1 = timed(lambda: loss(1))
    lb, t_lossb = timed(lambda: loss(a.batch_size))
    print(json.dumps(dict(prompts=a.prompts, batch_size=a.batch_size, max_new_tokens=a.max_new_tokens,
                          generate_speedup=round(t_gen1 / t_genb, 2), loss_speedup=round(t_loss1 / t_lossb, 2),
                          identical_answers=[x["text"] for x in one] == [x["text"] for x in many],
                          loss_abs_diff=abs(l1["eval_loss"] - lb["eval_loss"]),
                          seconds=dict(generate_b1=round(t_gen1, 2), generate_batched=round(t_genb, 2),
                                       loss_b1=round(t_loss1, 2), loss_batched=round(t_lossb, 2)))))


if __name__ == "__main__":
    main()
