"The decision flow and the whole pipeline, as a user runs them: run_finetune, the CLI, the workflow notebooks."
import json, os, subprocess, sys
from pathlib import Path
import pytest
from finetune_nb.config import FineTuneConfig
from finetune_nb.core import DataError, DatasetTooSmallWarning
from finetune_nb.run import run_finetune

ROOT = Path(__file__).resolve().parents[1]
TOPICS = "billing shipping returns warranty accounts passwords invoices refunds delivery coupons".split()


def _faq(path, n):
    "n distinct support rows with topics and ratings."
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for i in range(n):
            t = TOPICS[i % len(TOPICS)]
            f.write(json.dumps({"instruction": f"Question {i}: how do {t} work for order type {chr(65 + i % 26)}{i}?",
                                "output": f"For {t}, case {i}: open the {t} page, choose order {i} and follow step {i % 5 + 1}.",
                                "metadata": {"topic": t, "rating": ["good", "ok", "bad"][i % 3]}}) + "\n")


def _cfg(tmp_path, rows, **over):
    _faq(tmp_path / "raw" / "faq.jsonl", rows)
    d = {"project": {"name": "p", "output_dir": str(tmp_path / "runs")},
         "data": {"input_path": str(tmp_path / "raw"), "split": {"validation_fraction": 0.2}},
         "training": {"device": "cpu", "max_steps": 4, "batch_size": 4, "gradient_accumulation_steps": 1, "max_seq_length": 256,
                      "eval_steps": 2, "save_steps": 4, "logging_steps": 1, "gradient_checkpointing": False},
         "evaluation": {"num_prompts": 2, "max_new_tokens": 8},
         "fallback": {"rating_mapping": {"good": 1.0, "ok": 0.5, "bad": 0.0}, "target_topics": ["billing", "refunds"]},
         "export": {"gguf": ["f16"]}}
    for k, v in over.items(): d.setdefault(k, {}).update(v)
    return FineTuneConfig.validate(d)


def test_too_few_rows_builds_model_set(tmp_path):
    cfg = _cfg(tmp_path, 30)
    with pytest.warns(DatasetTooSmallWarning, match="fewer than fallback.min_rows"):
        res = run_finetune(cfg)
    assert res.mode == "model_set" and "fewer than fallback.min_rows (50)" in res.reason
    ms = json.loads((cfg.run_dir / "model_set_config.json").read_text())
    assert ms["examples"] and ms["system_prompt"]
    assert {"billing", "refunds"} <= {t for e in ms["examples"] for t in e["topics"]}
    assert set(ms["selection"]["topics_covered"]) == {"billing", "refunds"} and not ms["selection"]["topics_missing"]
    meta = json.loads((cfg.run_dir / "run_metadata.json").read_text())
    assert meta["mode"] == "model_set" and meta["status"] == "fallback"
    assert any(s["name"] == "export" and s["status"].startswith("not run") for s in meta["stages"])
    assert not (cfg.run_dir / "adapter").exists()


def test_too_few_rows_without_fallback_raises(tmp_path):
    cfg = _cfg(tmp_path, 30, fallback={"enabled": False})
    with pytest.raises(DatasetTooSmallWarning, match="30 prepared rows"):
        run_finetune(cfg)
    assert json.loads((cfg.run_dir / "run_metadata.json").read_text())["status"] == "failed"


def test_api_only_model_falls_back(tmp_path):
    cfg = _cfg(tmp_path, 60, model={"model_name": "claude-haiku-4-5"})
    res = run_finetune(cfg)
    assert res.mode == "model_set" and "API-only" in res.reason
    assert any(o.name == "evaluate" and "API-only" in o.status for o in res.stages)


def test_training_failure_falls_back_with_original_error(tmp_path):
    from transformers import TrainerCallback
    class OOM(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw): raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    cfg = _cfg(tmp_path, 60)
    res = run_finetune(cfg, callbacks=[OOM()])
    assert res.mode == "model_set" and "CUDA out of memory" in res.reason
    meta = json.loads((cfg.run_dir / "run_metadata.json").read_text())
    assert meta["error"]["type"] == "RuntimeError" and "CUDA out of memory" in meta["error"]["message"]
    assert (cfg.run_dir / "model_set_config.json").exists()


def test_no_usable_examples_is_a_data_error_with_the_reason(tmp_path):
    "Every row malformed is the user's data to fix, not a case for the fallback: the error says why (issue 15, items 3 and 4)."
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "empty.jsonl").write_text('{"instruction": "no answer"}\n')
    cfg = FineTuneConfig.validate({"project": {"name": "p", "output_dir": str(tmp_path / "runs")}, "data": {"input_path": str(tmp_path / "raw")}})
    with pytest.raises(DataError, match=r"no usable examples \(1 file read, 0 rows in, 1 files or rows skipped\): 1 x field 'output': missing"):
        run_finetune(cfg)
    assert not (cfg.run_dir / "model_set_config.json").exists()


def test_finetune_path_then_second_run_skips_finished_stages(tmp_path):
    cfg = _cfg(tmp_path, 60)
    res = run_finetune(cfg)
    assert res.mode == "finetuned", res.summary()
    run = cfg.run_dir
    for p in ("adapter/adapter_config.json", "eval/report.md", "eval/loss.png", "merged/config.json", "model-f16.gguf", "Modelfile",
              "metrics.prom", "run_metadata.json"):
        assert (run / p).exists(), p
    assert [o.status for o in res.stages] == ["ran"] * 5
    again = run_finetune(cfg)
    assert [o.status for o in again.stages] == ["skipped (up to date)"] * 5
    forced = run_finetune(cfg, force=["evaluate"])
    assert [o.status for o in forced.stages] == ["skipped (up to date)", "skipped (up to date)", "ran", "ran", "ran"]
    from prometheus_client.parser import text_string_to_metric_families
    fams = {f.name: f for f in text_string_to_metric_families((run / "metrics.prom").read_text())}
    runs = [s for s in fams["finetune_nb_runs"].samples if s.name.endswith("_total")]
    assert sum(s.value for s in runs if s.labels.get("status") == "success") == 3
    from finetune_nb.versions import list_models
    assert len(list_models(cfg)) == 2  # the all-skipped rerun made no new model files, so no new version
    gguf = run / "model-f16.gguf"
    gguf.write_bytes(gguf.read_bytes()[: gguf.stat().st_size // 3])  # cut short after the run (a full disk, an interrupted copy)
    again = run_finetune(cfg)
    assert [o.status for o in again.stages] == ["skipped (up to date)"] * 4 + ["ran"]  # not "up to date": the file changed
    assert json.loads((run / "export_metadata.json").read_text())["gguf"]["f16"]["verification"]["passed"]


def _papermill(nb, out, params, env=None):
    args = [sys.executable, "-m", "finetune_nb", "run-notebook", str(nb), "-o", str(out), "-q"]
    for k, v in params.items(): args += ["-p", k, str(v)]
    return subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900)


def test_quickstart_notebook_keeps_secrets_out(tmp_path):
    secret = "sk-ant-api03-" + "Z" * 48
    r = _papermill(ROOT / "nbs/workflows/quickstart.ipynb", tmp_path / "out.ipynb",
                   {"output_dir": tmp_path / "qs", "max_steps": 20}, env={"ANTHROPIC_API_KEY": secret, "HF_TOKEN": "hf_" + "Y" * 34})
    assert r.returncode == 0, r.stderr[-3000:]
    text = (tmp_path / "out.ipynb").read_text()
    assert "mode      finetuned" in text and "model-f16.gguf" in text
    assert secret not in text and "Y" * 34 not in text
    for f in (tmp_path / "qs").rglob("*"):
        if f.is_file() and f.stat().st_size < 5_000_000: assert secret.encode() not in f.read_bytes(), f


def test_gpu_notebook_prepare_only_with_hub_model_offline(tmp_path):
    r = _papermill(ROOT / "nbs/workflows/finetune_gpu.ipynb", tmp_path / "out.ipynb", {"output_dir": tmp_path / "runs", "prepare_only": True})
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "runs" / "gpu-finetune" / "data" / "train.jsonl").stat().st_size > 0


def test_gpu_notebook_end_to_end_with_tiny_model_on_cpu(tmp_path):
    r = _papermill(ROOT / "nbs/workflows/finetune_gpu.ipynb", tmp_path / "out.ipynb",
                   {"output_dir": tmp_path / "runs", "model_name": "builtin:tiny-llama", "max_steps": 6, "batch_size": 4,
                    "gradient_accumulation_steps": 1, "max_seq_length": 256, "gguf": "f16"})
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "runs" / "gpu-finetune"
    assert (run / "adapter").is_dir() and (run / "model-f16.gguf").exists() and (run / "eval" / "report.html").exists()
    assert FineTuneConfig.from_yaml(run / "training_config.yaml").model.use_qlora  # QLoRA, the default, ran on the CPU (bitsandbytes)
    assert "QLoRA 4-bit" in (tmp_path / "out.ipynb").read_text()


def test_quickstart_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "finetune_nb", "quickstart", "--output", str(tmp_path / "qs"), "--max-steps", "20", "-q"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mode      finetuned" in r.stdout and "report:" in r.stdout
    meta = json.loads((tmp_path / "qs" / "quickstart" / "run_metadata.json").read_text())
    assert meta["status"] == "success" and len(meta["stages"]) == 5


def test_run_command_prepare_only(tmp_path):
    cfg = _cfg(tmp_path, 12)
    cfg.to_yaml(tmp_path / "c.yaml")
    r = subprocess.run([sys.executable, "-m", "finetune_nb", "run", str(tmp_path / "c.yaml"), "--prepare-only", "-q"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "mode      prepared" in r.stdout and "prepare-data   ran" in r.stdout


def test_runpod_script_runs_a_notebook_into_workspace(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    nb = new_notebook(cells=[new_code_cell("x = 1", metadata={"tags": ["parameters"]}), new_code_cell("import os\nprint('token set', bool(os.environ.get('HF_TOKEN')), x)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "job.ipynb")
    ws = tmp_path / "workspace"; ws.mkdir()
    token = "hf_" + "R" * 34
    r = subprocess.run(["bash", str(ROOT / "scripts/runpod_start.sh"), str(tmp_path / "job.ipynb"), "-p", "x", "7"],
                       capture_output=True, text=True, env={**os.environ, "WORKSPACE": str(ws), "HF_TOKEN": token}, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    outs = list((ws / "outputs").glob("job-*.ipynb"))
    assert len(outs) == 1 and "token set True 7" in outs[0].read_text()
    assert list((ws / "outputs" / "logs").glob("job-*.log"))
    assert all(token not in p.read_text(errors="ignore") for p in ws.rglob("*") if p.is_file() and p.stat().st_size < 5_000_000)


@pytest.mark.parametrize("family,stop,pad", [("llama3", "<|eot_id|>", "<|reserved_special_token_0|>"), ("gemma", "<eos>", "<pad>")])
def test_tokenizer_families_keep_their_stops_and_template_through_export(tmp_path, family, stop, pad):
    """A Llama 3 vocabulary (its turn ends with <|eot_id|> while EOS is <|end_of_text|>; no pad token) and a base model's Gemma
    vocabulary (no chat template, no ChatML tokens) go through every stage: the template the run chose is the one in the adapter,
    the merged model, the GGUF file and the Modelfile; the end of turn is trained, stops generation and is declared on export;
    the pad token is one the vocabulary had, so the embeddings keep their size."""
    import gguf
    from transformers import AutoTokenizer, GenerationConfig
    from finetune_nb.export import strip_generation_markers
    from finetune_nb.tiny import make_tiny_model
    from finetune_nb.templates import resolve_chat_template
    base = make_tiny_model(tmp_path / family, family=family)
    cfg = _cfg(tmp_path, 60, model={"model_name": str(base)})
    res = run_finetune(cfg)
    assert res.mode == "finetuned", res.reason
    run, want = cfg.run_dir, resolve_chat_template(cfg, AutoTokenizer.from_pretrained(base))
    meta = json.loads((run / "metadata.json").read_text())
    assert stop in meta["stop_tokens"] and pad in meta["pad_token"]
    tok = AutoTokenizer.from_pretrained(run / "merged")
    assert AutoTokenizer.from_pretrained(run / "adapter").chat_template == tok.chat_template == want
    assert tok.convert_tokens_to_ids(stop) in GenerationConfig.from_pretrained(run / "merged").eos_token_id
    assert json.loads((run / "merged" / "config.json").read_text())["vocab_size"] == json.loads((base / "config.json").read_text())["vocab_size"]
    reader = gguf.GGUFReader(run / "model-f16.gguf")
    assert reader.fields["tokenizer.chat_template"].contents() == strip_generation_markers(want)
    assert f"PARAMETER stop {json.dumps(stop)}" in (run / "Modelfile").read_text()
    systems = json.loads((run / "eval" / "metrics.json").read_text())["systems"]
    assert set(systems) == {"base", "tuned"}
def test_resume_past_a_damaged_checkpoint_still_fine_tunes(tmp_path):
    "A cut-off newest checkpoint: `run --resume` continues from the intact one before it, never turns into a model-set config."
    from finetune_nb.train import train
    cfg = _cfg(tmp_path, 60, training={"max_steps": 4, "save_steps": 2, "eval_steps": 4}, export={"merge": False})
    run_finetune(cfg, prepare_only=True)
    train(cfg)  # as an interrupted run leaves them: checkpoints, no train record
    w = cfg.run_dir / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    cfg.training.max_steps = 6
    with pytest.warns(UserWarning, match=r"checkpoint-4 is damaged \(adapter_model.safetensors: cut off"):
        res = run_finetune(cfg, resume=True)
    assert res.mode == "finetuned" and res.reason is None, res.summary()
    meta = json.loads((cfg.run_dir / "metadata.json").read_text())
    assert meta["resumed_from"].endswith("checkpoint-2") and meta["global_step"] == 6


def test_a_file_error_in_training_fails_the_run_instead_of_falling_back(tmp_path):
    from transformers import TrainerCallback
    class Disk(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw): raise OSError(28, "No space left on device", "checkpoints/checkpoint-2")
    cfg = _cfg(tmp_path, 60)
    with pytest.raises(OSError, match="No space left on device"):
        run_finetune(cfg, callbacks=[Disk()])
    meta = json.loads((cfg.run_dir / "run_metadata.json").read_text())
    assert meta["status"] == "failed" and not (cfg.run_dir / "model_set_config.json").exists()
