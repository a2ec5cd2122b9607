"The decision-flow checks and the papermill runner, as a user meets them."
import pytest
from finetune_nb.config import FineTuneConfig
from finetune_nb.core import ConfigError, FineTuningNotSupportedError, FinetuneNBError
from finetune_nb.tiny import make_tiny_model
from finetune_nb.run import check_finetunable, run_notebook


def cfg(**model):
    return FineTuneConfig.validate({"model": model, "training": {"device": "cpu"}})


@pytest.mark.parametrize("name", ["claude-haiku-4-5", "gpt-4o-mini", "gemini-2.5-flash"])
def test_api_only_models_not_finetunable(name):
    with pytest.raises(FineTuningNotSupportedError, match="API-only"): check_finetunable(cfg(model_name=name))


def test_encoder_model_not_finetunable(tmp_path):
    from transformers import BertConfig, BertModel
    BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)).save_pretrained(tmp_path)
    with pytest.raises(FineTuningNotSupportedError, match=r"bert model \(BertModel\), not a causal language model"):
        check_finetunable(cfg(model_name=str(tmp_path)))


def test_missing_weights_not_finetunable(tmp_path):
    p = make_tiny_model(tmp_path / "m")
    (p / "model.safetensors").unlink()
    with pytest.raises(FineTuningNotSupportedError, match="no weights"): check_finetunable(cfg(model_name=str(p)))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
def test_tiny_archs_are_finetunable(tmp_path, arch):
    assert {"q_proj", "v_proj", "down_proj"} <= check_finetunable(cfg(model_name=str(make_tiny_model(tmp_path / arch, arch))))


def test_target_module_typo_is_a_config_error():
    with pytest.raises(ConfigError, match="q_prj not found.*q_proj"): check_finetunable(cfg(target_modules=["q_prj", "v_proj"]))


def _notebook(path, body):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    nb = new_notebook(cells=[new_code_cell("name = 'x'", metadata={"tags": ["parameters"]}), new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_env_secret_never_in_output_notebook(tmp_path, monkeypatch):
    secret = "sk-ant-api03-" + "Q" * 40
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    src = _notebook(tmp_path / "wf.ipynb", "import os\nkey_set = bool(os.environ['ANTHROPIC_API_KEY'])\nprint('key set:', key_set)")
    out = run_notebook(src, {"name": "demo"}, output=tmp_path / "out.ipynb", progress=False)
    text = out.read_text()
    assert "key set: True" in text and secret not in text


def test_secret_parameter_refused_before_running(tmp_path):
    src = _notebook(tmp_path / "wf.ipynb", "print(name)")
    with pytest.raises(FinetuneNBError, match="looks like a secret"):
        run_notebook(src, {"anthropic_api_key": "abc"}, output=tmp_path / "out.ipynb", progress=False)
    with pytest.raises(FinetuneNBError, match="looks like a secret"):
        run_notebook(src, {"name": "hf_" + "a" * 34}, output=tmp_path / "out.ipynb", progress=False)
    assert not (tmp_path / "out.ipynb").exists()


def test_failing_cell_named_and_partial_output_kept(tmp_path):
    src = _notebook(tmp_path / "wf.ipynb", "print('started')\nraise ValueError('bad input for ' + name)")
    with pytest.raises(FinetuneNBError, match=r"cell 2 failed with ValueError: bad input for demo") as e:
        run_notebook(src, {"name": "demo"}, output=tmp_path / "out.ipynb", progress=False)
    assert str(tmp_path / "out.ipynb") in e.value.hint
    assert "started" in (tmp_path / "out.ipynb").read_text()


# -- QA generation failing inside `run`, then coming back (a real local HTTP server) -----------------

import json, os, subprocess, sys
from finetune_nb.testing import KEY, FakeAnthropic  # noqa: E402


def _qa_project(tmp_path):
    "Three documents, QA generation on, an API-only base model (so a run needs no training): a quick model-set run."
    docs = tmp_path / "docs"; docs.mkdir()
    for name in ("valves", "pumps", "seals"):
        (docs / f"{name}.txt").write_text(f"The {name} manual. Every {name[:-1]} is inspected monthly and replaced every five years.\n")
    (tmp_path / "c.yaml").write_text(json.dumps({
        "project": {"name": "qa"}, "model": {"model_name": "claude-haiku-4-5"},
        "data": {"input_path": "docs", "split": {"validation_fraction": 0.0},
                 "langchain": {"qa_generation_enabled": True, "qa_pairs_per_chunk": 2, "qa_max_retries": 1, "max_concurrency": 1}},
        "fallback": {"min_rows": 2}}))


def _run(server, tmp_path, *args):
    before = server.message_requests
    r = subprocess.run([sys.executable, "-m", "finetune_nb", "run", "c.yaml", *args], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": KEY})
    return r, server.message_requests - before


def test_qa_failing_in_run_names_the_cause_and_a_rerun_retries_only_the_failures(tmp_path):
    _qa_project(tmp_path)
    with FakeAnthropic() as server:
        server.down = 503
        r, sent = _run(server, tmp_path)
        assert r.returncode == 1 and sent == 3 * 2  # three chunks, each tried and retried once
        err = r.stderr.strip().splitlines()[-1]
        assert "QA generation failed for 3 of 3 chunks" in err and "qa_failures.jsonl" in err and "503" in err, r.stderr
        assert "data.input_path" not in r.stderr and "few-shot" not in r.stderr and "Traceback" not in r.stderr
        failures = (tmp_path / "runs" / "qa" / "data" / "qa_failures.jsonl").read_text().splitlines()
        assert [json.loads(f)["attempts"] for f in failures] == [2, 2, 2]

        server.down = None  # the API is back: a plain rerun asks for the failed chunks, and only for them
        r, sent = _run(server, tmp_path)
        assert r.returncode == 0, r.stderr
        assert sent == 3 and "mode      model_set" in r.stdout
        r, sent = _run(server, tmp_path)
        assert r.returncode == 0 and sent == 0 and "prepare-data   skipped (up to date)" in r.stdout


def test_some_chunks_failing_leave_the_stage_incomplete_until_a_rerun_gets_them(tmp_path):
    _qa_project(tmp_path)
    with FakeAnthropic() as server:
        fast = {"retry-after-ms": "1"}
        server.script = [(529, fast, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})] * 2
        r, sent = _run(server, tmp_path)
        assert r.returncode == 0, r.stderr
        assert sent == 2 + 2 and "prepare-data   ran (incomplete: QA generation failed for 1 of 3 chunks" in r.stdout
        assert "the next run asks only those again" in r.stderr
        r, sent = _run(server, tmp_path)
        assert r.returncode == 0 and sent == 1 and "prepare-data   ran  " in r.stdout and "fallback       ran" in r.stdout
        r, sent = _run(server, tmp_path)
        assert sent == 0 and r.stdout.count("skipped (up to date)") == 2
