"Training on the tiny built-in model, on the CPU: learning, outputs, the loss-mask check, resume, faults, packing, two processes."
import json, os, signal, subprocess, sys, textwrap, warnings

import pytest

from finetune_nb.config import FineTuneConfig
from finetune_nb.core import ConfigError, DataError, TrainingFailedError, write_jsonl


def facts(lo, hi):
    "Records small enough to memorise: n plus n."
    return [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2*i}."}],
             "metadata": {"source": "facts.jsonl", "line": i + 1}} for i in range(lo, hi)]


def make_config(root, name="run", train_rows=None, val_rows=None, **training):
    "A CPU config for the tiny model, with its prepared data written where data preparation puts it."
    t = dict(device="cpu", max_steps=6, batch_size=4, gradient_accumulation_steps=1, learning_rate=5e-3, eval_steps=3,
             save_steps=3, logging_steps=1, max_seq_length=128, report_to=["none"], warmup_ratio=0.0)
    cfg = FineTuneConfig.validate({"project": {"name": name, "output_dir": str(root)}, "training": {**t, **training}})
    write_jsonl(cfg.run_dir/"data"/"train.jsonl", facts(0, 24) if train_rows is None else train_rows)
    if val_rows is not False: write_jsonl(cfg.run_dir/"data"/"validation.jsonl", facts(24, 28) if val_rows is None else val_rows)
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    "One real run: 30 steps, evaluation, TensorBoard."
    from finetune_nb.train import train
    cfg = make_config(tmp_path_factory.mktemp("train"), max_steps=30, eval_steps=10, save_steps=10, logging_steps=5,
                      report_to=["tensorboard"])
    return cfg, train(cfg)


def test_loss_falls_on_a_memorisable_set(trained):
    cfg, res = trained
    losses = [h["loss"] for h in res.log_history if "loss" in h]
    assert res.global_step == 30 and len(losses) == 6
    assert losses[-1] < losses[0] - 0.4, losses  # from ln(vocab) ≈ 6.2 towards the memorised answers
    evals = [h["eval_loss"] for h in res.log_history if "eval_loss" in h]
    assert len(evals) >= 3 and evals[-1] < evals[0]


def test_outputs_in_the_run_folder(trained):
    cfg, res = trained
    run = cfg.run_dir
    for f in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "adapter/tokenizer.json",
              "training_config.yaml", "metadata.json", "log_history.json"):
        assert (run/f).is_file(), f
    assert list((run/"tensorboard").glob("events.out.tfevents.*"))
    assert not [p for p in run.iterdir() if p.name.startswith(".adapter")]  # no temporary folders left
    meta = json.loads((run/"metadata.json").read_text())
    assert meta["global_step"] == 30 and meta["metrics"]["eval_loss"] > 0
    assert {"torch", "transformers", "trl", "peft"} <= set(meta["versions"])
    assert meta["hardware"]["device"] == "cpu" and meta["duration_s"] > 0
    assert meta["data"]["train"]["rows"] == 24 and len(meta["data"]["train"]["sha256"]) == 64
    assert meta["data"]["validation"]["rows"] == 4
    again = FineTuneConfig.from_yaml(run/"training_config.yaml")  # the resolved config reloads and means the same run
    assert again.run_dir == run and again.training.max_steps == 30
    assert json.loads((run/"log_history.json").read_text()) == res.log_history


def test_adapter_reloads_with_peft_and_generates(trained):
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer
    from finetune_nb.models import load_model
    cfg, res = trained
    base, _ = load_model(cfg, device="cpu")
    tuned = PeftModel.from_pretrained(base, res.adapter_dir)
    tok = AutoTokenizer.from_pretrained(res.adapter_dir)
    assert "{% generation %}" in tok.chat_template and tok.pad_token != tok.eos_token
    enc = tok.apply_chat_template([{"role": "user", "content": "What is 3 plus 3?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = tuned.generate(**enc, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]
    # the adapter changes the model: LoRA B matrices moved away from their zero init
    b = [p for n, p in tuned.named_parameters() if "lora_B" in n]
    assert b and max(float(p.abs().max()) for p in b) > 0
    with torch.no_grad(), tuned.disable_adapter():
        plain = tuned(**enc).logits
    assert not torch.allclose(plain, tuned(**enc).logits)


# --- the loss-mask check refuses before any step ---

def test_refuses_rows_with_no_assistant_turn(tmp_path):
    from finetune_nb.train import train
    rows = facts(0, 8)
    for i in (1, 4): rows[i]["messages"] = rows[i]["messages"][:1]  # user turn only: nothing to learn
    rows[1]["messages"][0]["role"] = "user"
    cfg = make_config(tmp_path, train_rows=rows)
    with pytest.raises(DataError, match=r"2 row\(s\) have no trainable.*lines 2, 5") as e:
        train(cfg)
    assert e.value.file.name == "train.jsonl"
    assert not (cfg.run_dir/"checkpoints").exists()


def test_refuses_a_template_with_no_assistant_spans(tmp_path):
    from finetune_nb.train import train
    (tmp_path/"empty.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% generation %}{% endgeneration %}{% endfor %}")
    cfg = make_config(tmp_path)
    cfg.model.chat_template = str(tmp_path/"empty.jinja")
    with pytest.raises(DataError, match=r"24 row\(s\) have no trainable"):
        train(cfg)


def test_refuses_when_no_answer_ends_in_a_special_token(tmp_path):
    from finetune_nb.templates import CHATML_TEMPLATE
    from finetune_nb.train import train
    plain = CHATML_TEMPLATE.replace("+ '<|im_end|>' }}{% endgeneration %}", "}}{% endgeneration %}").replace("'<|im_end|>\\n'", "'\\n\\n'")
    assert "<|im_end|>" not in plain
    (tmp_path/"noeos.jinja").write_text(plain)
    cfg = make_config(tmp_path)
    cfg.model.chat_template = str(tmp_path/"noeos.jinja")
    with pytest.raises(DataError, match=r"no row has a token that ends a turn \(<\|im_end\|>\).*never learn to stop"):
        train(cfg)


def test_turn_end_written_after_the_marked_answer_is_trained(tmp_path):
    "A template that marks the answer but writes its end-of-turn token after the marked part is trained as it is, stop included."
    from finetune_nb.templates import CHATML_TEMPLATE
    from finetune_nb.train import train
    moved = CHATML_TEMPLATE.replace("message['content'] + '<|im_end|>' }}{% endgeneration %}",
                                    "message['content'] }}{% endgeneration %}{{- '<|im_end|>' }}")
    assert moved != CHATML_TEMPLATE
    (tmp_path/"moved.jinja").write_text(moved)
    cfg = make_config(tmp_path, max_steps=1, eval_steps=1, save_steps=1)
    cfg.model.chat_template = str(tmp_path/"moved.jinja")
    meta = json.loads((train(cfg).run_dir/"metadata.json").read_text())
    assert meta["data"]["train"]["rows_without_eos"] == 0 and meta["stop_tokens"] == ["<|im_end|>"]


def test_pad_equal_to_eos_is_refused_by_the_check_and_fixed_by_train(tmp_path):
    from finetune_nb.models import load_model
    from finetune_nb.templates import resolve_chat_template
    from finetune_nb.train import check_loss_mask, ensure_pad_token, tokenize_rows
    cfg = make_config(tmp_path)
    model, tok = load_model(cfg, device="cpu")
    tok.pad_token = tok.eos_token
    rendered = tokenize_rows(list(enumerate(facts(0, 3), 1)), tok, resolve_chat_template(cfg, tok))
    with pytest.raises(DataError, match="pad token .* is also a token that ends a turn"):
        check_loss_mask(rendered, [1, 2, 3], tok, "train.jsonl")
    assert "using existing token" in ensure_pad_token(tok, model)
    assert tok.pad_token != tok.eos_token and model.config.pad_token_id == tok.pad_token_id
    assert check_loss_mask(rendered, [1, 2, 3], tok, "train.jsonl")["rows"] == 3


def test_template_without_markers_trains_the_completion(tmp_path):
    "No {% generation %} markers: the prompt/completion split still puts loss on the reply and its EOS only."
    from finetune_nb.models import load_model
    from finetune_nb.templates import CHATML_TEMPLATE
    from finetune_nb.train import tokenize_rows
    cfg = make_config(tmp_path)
    _, tok = load_model(cfg, device="cpu")
    plain = CHATML_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    r = tokenize_rows([(1, facts(5, 6)[0])], tok, plain)[0]
    trained_text = tok.decode([t for t, m in zip(r.input_ids, r.assistant_mask) if m])
    assert trained_text.startswith("5 plus 5 is 10.<|im_end|>") and "What is" not in trained_text


def test_qlora_trains_over_4bit_weights_on_the_cpu_then_merges_unquantised(tmp_path):
    """use_qlora on the CPU (bitsandbytes' CPU kernels): the frozen base is NF4 4-bit while training, the loss falls,
    the adapter reloads onto a 4-bit base and generates, and the merge goes into the unquantised base."""
    import bitsandbytes as bnb
    from safetensors import safe_open
    from transformers import TrainerCallback
    from finetune_nb.export import merge_adapter
    from finetune_nb.run import validate_finetuned
    from finetune_nb.train import train
    seen = {}
    class Spy(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            seen["nf4"] = [m.weight.quant_type for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
            seen["layers"] = model.config.num_hidden_layers
            seen["trainable"] = [n for n, p in model.named_parameters() if p.requires_grad]
        def on_step_end(self, args, state, control, model=None, **kw):  # bitsandbytes' inference-only layout has no backward
            seen.setdefault("inference_layout", set()).update(
                state.global_step for m in model.modules() if getattr(getattr(m, "weight", None), "quant_state", None) is not None
                and getattr(m.weight.quant_state, "packing_format_for_cpu", False))
    # evaluations between checkpoints: saving a checkpoint would undo bitsandbytes' repacking and hide the trap below
    cfg = make_config(tmp_path, max_steps=30, eval_steps=5, save_steps=15, logging_steps=5)
    cfg.model.use_qlora = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train(cfg, callbacks=[Spy()])
    # training after each evaluation still backpropagates through the 4-bit layers (on AVX512-BF16 CPUs bitsandbytes
    # would repack them for inference at the first evaluation, and the gradient below would be lost)
    assert not seen["inference_layout"] and not [w for w in caught if "autograd kernel was not registered" in str(w.message)]
    assert seen["nf4"] and set(seen["nf4"]) == {"nf4"} and len(seen["nf4"]) == 7 * seen["layers"]  # q k v o gate up down
    assert seen["trainable"] and all(".lora_A." in n or ".lora_B." in n for n in seen["trainable"])  # the 4-bit base is frozen
    losses = [h["loss"] for h in res.log_history if "loss" in h]
    assert losses[-1] < losses[0] - 0.4, losses
    assert validate_finetuned(cfg, res.adapter_dir, res.metrics)["generated_tokens"] > 0  # a 4-bit base with the adapter
    merged = merge_adapter(cfg)
    assert "quantization_config" not in json.loads((merged/"config.json").read_text())
    with safe_open(str(next(merged.glob("*.safetensors"))), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}
    merge = json.loads((cfg.run_dir/"export_metadata.json").read_text())["merge"]
    assert merge["max_abs_logit_diff"] < 1e-3  # the merge itself is exact
    gap = merge["vs_qlora_model"]  # the trained model (adapter on the 4-bit base) against the merged one
    assert gap["prompts"] == merge["prompts"] and gap["max_abs_logit_diff"] > 1e-3  # the 4-bit rounding is really there
    assert 0 < gap["greedy_steps"] <= gap["prompts"] * gap["new_tokens"] and len(gap["greedy_mismatches"]) <= gap["greedy_steps"]


def test_8bit_adamw_keeps_8bit_state_and_learns(tmp_path):
    "training.optim: adamw_8bit is bitsandbytes' optimizer; moments of tensors of 4,096+ values are stored in uint8."
    from transformers import TrainerCallback
    from finetune_nb.train import train
    seen = {}
    class Spy(TrainerCallback):
        def on_train_end(self, args, state, control, optimizer=None, **kw):
            opt = getattr(optimizer, "optimizer", optimizer)
            seen["cls"] = f"{type(opt).__module__}.{type(opt).__name__}"
            seen["dtypes"] = {str(v.dtype) for st in opt.state.values() for v in st.values() if getattr(v, "numel", lambda: 0)() > 1}
    cfg = make_config(tmp_path, max_steps=20, logging_steps=5, eval_steps=100, save_steps=100, val_rows=False, optim="adamw_8bit")
    cfg.model.lora_rank = 64  # 64 x 64 LoRA matrices: large enough for 8-bit state
    res = train(cfg, callbacks=[Spy()])
    assert seen["cls"].startswith("bitsandbytes.optim") and "torch.uint8" in seen["dtypes"], seen
    losses = [h["loss"] for h in res.log_history if "loss" in h]
    assert losses[-1] < losses[0] - 0.4, losses


def test_8bit_optimizer_without_bitsandbytes_is_a_config_error(tmp_path, monkeypatch):
    from finetune_nb.train import train
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    cfg = make_config(tmp_path, optim="paged_adamw_8bit")
    with pytest.raises(ConfigError, match=r"training\.optim: paged_adamw_8bit needs bitsandbytes .*or use adamw_torch"):
        train(cfg)


def test_an_attention_kernel_that_is_not_installed_is_a_config_error(tmp_path):
    "flash-attn is not installed here (and there is no GPU): the error names the field and the way out, before any step."
    from finetune_nb.train import train
    cfg = make_config(tmp_path)
    cfg.model.attn_implementation = "flash_attention_2"
    with pytest.raises(ConfigError, match=r"model\.attn_implementation: FlashAttention2 .*Use auto \(sdpa\)"):
        train(cfg)
    assert not (cfg.run_dir/"checkpoints").exists()


# --- faults ---

def test_an_exception_in_training_becomes_training_failed_error(tmp_path):
    from transformers import TrainerCallback
    from finetune_nb.train import train

    class OOM(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2: raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    cfg = make_config(tmp_path, val_rows=False)
    with pytest.raises(TrainingFailedError, match="at step 2: RuntimeError: CUDA out of memory") as e:
        train(cfg, callbacks=[OOM()])
    assert isinstance(e.value.original, RuntimeError) and "Tried to allocate" in str(e.value.original)
    assert "batch_size" in e.value.hint
    assert not (cfg.run_dir/"adapter").exists()


WORKER = textwrap.dedent("""
    import sys
    from transformers import TrainerCallback
    from finetune_nb.config import FineTuneConfig
    from finetune_nb.train import train
    class Say(TrainerCallback):
        def on_step_end(self, args, state, control, **kw): print("STEP", state.global_step, flush=True)
    train(FineTuneConfig.from_yaml(sys.argv[1]), callbacks=[Say()])
""")


def test_sigint_checkpoints_then_resume_continues_the_global_step_past_a_torn_checkpoint(tmp_path, caplog):
    import logging
    from transformers import TrainerCallback
    from finetune_nb.train import resolved, train
    cfg = make_config(tmp_path, max_steps=400, save_steps=1000, eval_steps=1000, val_rows=False)
    resolved(cfg).to_yaml(tmp_path/"config.yaml")
    (tmp_path/"worker.py").write_text(WORKER)
    p = subprocess.Popen([sys.executable, str(tmp_path/"worker.py"), str(tmp_path/"config.yaml")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    for line in p.stdout:
        if line.startswith("STEP 3"): break
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=240)
    assert p.returncode != 0 and "KeyboardInterrupt" in err and "checkpoint saved" in err
    cks = sorted(int(c.name.split("-")[1]) for c in (cfg.run_dir/"checkpoints").glob("checkpoint-*"))
    assert len(cks) == 1 and 3 <= cks[0] < 400, cks  # one checkpoint, written on the interrupt, not at a save step
    step = cks[0]
    assert (cfg.run_dir/"checkpoints"/f"checkpoint-{step}"/"trainer_state.json").is_file()
    cfg.training.max_steps = 1
    with caplog.at_level(logging.WARNING, logger="finetune_nb"):
        train(cfg)  # a plain rerun starts over, and says that --resume would continue the interrupted one
    assert f"checkpoint-{step} holds a training interrupted at step {step} of 400; starting over" in caplog.text and "--resume" in caplog.text
    # a later checkpoint torn by a crash mid-write: state written, adapter weights not
    torn = cfg.run_dir/"checkpoints"/f"checkpoint-{step + 50}"
    torn.mkdir(); (torn/"trainer_state.json").write_text((cfg.run_dir/"checkpoints"/f"checkpoint-{step}"/"trainer_state.json").read_text())

    seen = []
    class Seen(TrainerCallback):
        def on_step_end(self, args, state, control, **kw): seen.append(state.global_step)
    cfg.training.max_steps = step + 2
    with pytest.warns(UserWarning, match=rf"checkpoint-{step + 50} is damaged \(adapter_model.safetensors: missing\)"):
        res = train(cfg, resume=True, callbacks=[Seen()])
    assert seen == [step + 1, step + 2] and res.global_step == step + 2
    assert json.loads((cfg.run_dir/"metadata.json").read_text())["resumed_from"].endswith(f"checkpoint-{step}")


# --- packing ---

def test_packed_loss_equals_unpacked_loss(tmp_path):
    import torch
    from finetune_nb.models import load_model
    from finetune_nb.templates import resolve_chat_template
    from finetune_nb.train import packed_vs_unpacked_loss, tokenize_rows
    cfg = make_config(tmp_path)
    model, tok = load_model(cfg, device="cpu")
    rendered = tokenize_rows(list(enumerate(facts(0, 5) + facts(95, 100), 1)), tok, resolve_chat_template(cfg, tok))
    for impl in ("sdpa", "eager"):
        model.set_attn_implementation(impl)
        packed, unpacked = packed_vs_unpacked_loss(model, rendered)
        assert packed == pytest.approx(unpacked, abs=1e-5), impl
    # the check can fail: the same rows concatenated without restarting positions do attend to each other
    ids = torch.tensor([sum((r.input_ids for r in rendered), [])])
    labels = torch.tensor([sum(([t if m else -100 for t, m in zip(r.input_ids, r.assistant_mask)] for r in rendered), [])])
    with torch.no_grad(): mixed = model(input_ids=ids, labels=labels, use_cache=False).loss.item()
    assert abs(mixed - unpacked) > 1e-4  # 20 times the tolerance above


def test_batches_are_padding_free_with_rows_kept_apart(tmp_path):
    "On CPU (sdpa): rows laid end to end, no pad token, positions restarting per row; bin-packing only with FlashAttention."
    import torch
    from datasets import Dataset
    from trl import SFTTrainer
    from finetune_nb.models import load_model
    from finetune_nb.templates import resolve_chat_template
    from finetune_nb.train import lora_config, sft_args, tokenize_rows
    cfg = make_config(tmp_path)
    fa = sft_args(cfg, "cpu", torch.float32, attn="flash_attention_2")  # (bf16 args cannot be built without a GPU)
    assert fa.packing and fa.packing_strategy == "bfd" and fa.padding_free and fa.max_length == 128
    args = sft_args(cfg, "cpu", torch.float32, has_eval=False, attn="sdpa")
    assert args.padding_free and not args.packing and not args.bf16 and args.use_cpu
    model, tok = load_model(cfg, device="cpu")
    rows = tokenize_rows(list(enumerate(facts(0, 4) + facts(1000, 1004), 1)), tok, resolve_chat_template(cfg, tok))
    ds = Dataset.from_dict({"input_ids": [r.input_ids for r in rows], "assistant_masks": [r.assistant_mask for r in rows]})
    tr = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora_config(cfg))
    batch = next(iter(tr.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    assert tok.pad_token_id not in batch["input_ids"].tolist()[0]
    ids, starts = batch["input_ids"][0].tolist(), (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    segments = [tuple(ids[s:e]) for s, e in zip(starts, starts[1:] + [len(ids)])]
    assert len(segments) == cfg.training.batch_size and set(segments) <= {tuple(r.input_ids) for r in rows}  # whole rows, nothing else


# --- two processes ---

def test_two_process_data_parallel_run_on_cpu(tmp_path):
    from finetune_nb.train import train
    cfg = make_config(tmp_path, max_steps=3, save_steps=100, eval_steps=100, batch_size=2, val_rows=False)
    res = train(cfg, num_processes=2)
    meta = json.loads((cfg.run_dir/"metadata.json").read_text())
    assert res.global_step == 3 and meta["hardware"]["processes"] == 2
    assert (res.adapter_dir/"adapter_model.safetensors").is_file()


def test_a_target_module_peft_refuses_is_a_config_error_naming_the_field(tmp_path):
    from finetune_nb.train import train
    cfg = make_config(tmp_path, val_rows=False)
    cfg.model.target_modules = ["no_such_proj"]  # PEFT raises (a ValueError) when it wraps the model
    with pytest.raises(ConfigError, match=r"model\.target_modules: .*no_such_proj") as e:
        train(cfg)
    assert isinstance(e.value.__cause__, ValueError)


@pytest.mark.parametrize("error", [FileNotFoundError(2, "No such file or directory", "shard-3.bin"), KeyError("input_ids")])
def test_a_bad_file_or_a_bug_in_training_is_raised_as_it_is(tmp_path, error):
    "Not a TrainingFailedError: the run would answer that with a model-set config, hiding the fault."
    from transformers import TrainerCallback
    from finetune_nb.train import train
    class Fault(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2: raise error
    with pytest.raises(type(error)) as e:
        train(make_config(tmp_path, val_rows=False), callbacks=[Fault()])
    assert e.value is error


def test_resume_skips_a_damaged_newest_checkpoint_naming_its_file(tmp_path, caplog):
    from finetune_nb.core import FinetuneNBError
    from finetune_nb.train import train
    cfg = make_config(tmp_path, max_steps=4, save_steps=2, val_rows=False)
    train(cfg)
    cks = cfg.run_dir/"checkpoints"
    assert sorted(p.name for p in cks.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    w = cks/"checkpoint-4"/"adapter_model.safetensors"
    w.write_bytes(w.read_bytes()[:-1000])  # truncated, as a full disk or a kill mid-copy leaves it
    cfg.training.max_steps = 5
    with pytest.warns(UserWarning, match=r"checkpoint-4 is damaged \(adapter_model.safetensors: cut off: \d+ bytes where its header describes \d+\)"):
        res = train(cfg, resume=True)
    assert res.global_step == 5
    assert json.loads((cfg.run_dir/"metadata.json").read_text())["resumed_from"].endswith("checkpoint-2")
    for ck in ("checkpoint-2", "checkpoint-5"):  # every checkpoint damaged: resuming is refused, naming the files
        f = cks/ck/"trainer_state.json"; f.write_text(f.read_text()[:40])
    (cks/"checkpoint-4"/"trainer_state.json").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FinetuneNBError, match=r"no intact checkpoint to resume from .*checkpoint-5/trainer_state.json: unreadable.*"
                                                  r"checkpoint-4/trainer_state.json: missing.*checkpoint-2/trainer_state.json: unreadable") as e:
            train(cfg, resume=True)
    assert "without --resume" in e.value.hint
