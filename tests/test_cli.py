"The finetune-nb command as a user runs it: exit codes, one-line errors, --debug tracebacks."
import json, os, shutil, subprocess, sys
from pathlib import Path
from finetune_nb.config import FineTuneConfig


def test_console_script_installed(tmp_path):
    exe = shutil.which("finetune-nb")
    assert exe, "the finetune-nb entry point is not on PATH"
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("finetune-nb ")


def test_init_then_validate(cli, tmp_path):
    r = cli("init", "cfg.yaml")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "cfg.yaml").read_text()
    assert "# LoRA rank r" in text and "lora_rank: 16" in text
    r = cli("validate", "cfg.yaml")
    assert r.returncode == 0, r.stderr
    assert "cfg.yaml: valid" in r.stdout and "model     builtin:tiny-llama" in r.stdout


def test_init_refuses_to_overwrite(cli, tmp_path):
    (tmp_path / "cfg.yaml").write_text("keep: me\n")
    r = cli("init", "cfg.yaml")
    assert r.returncode == 1 and "already exists" in r.stderr and "--force" in r.stderr
    assert (tmp_path / "cfg.yaml").read_text() == "keep: me\n"
    assert cli("init", "cfg.yaml", "--force").returncode == 0


def _validate(cli, tmp_path, text, *flags):
    (tmp_path / "bad.yaml").write_text(text)
    return cli("validate", "bad.yaml", *flags)


def test_typo_one_clear_line(cli, tmp_path):
    r = _validate(cli, tmp_path, "model:\n  lora_rnak: 8\n")
    assert r.returncode == 1
    assert "bad.yaml:2: model.lora_rnak: unknown key; did you mean 'lora_rank'?" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_negative_learning_rate(cli, tmp_path):
    r = _validate(cli, tmp_path, "training:\n  learning_rate: -1\n")
    assert r.returncode == 1 and "training.learning_rate" in r.stderr and "greater than 0" in r.stderr


def test_api_key_refused(cli, tmp_path):
    r = _validate(cli, tmp_path, "anthropic_api_key: x\n")
    assert r.returncode == 1 and "anthropic_api_key" in r.stderr and "ANTHROPIC_API_KEY" in r.stderr


def test_all_errors_listed(cli, tmp_path):
    r = _validate(cli, tmp_path, "model:\n  lora_rnak: 8\ntraining:\n  learning_rate: -1\n  device: tpu\n")
    assert r.returncode == 1 and "3 problems" in r.stderr
    for needle in ("bad.yaml:2: model.lora_rnak", "bad.yaml:4: training.learning_rate", "bad.yaml:5: training.device"):
        assert needle in r.stderr


def test_debug_shows_traceback(cli, tmp_path):
    r = _validate(cli, tmp_path, "model:\n  lora_rnak: 8\n", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr and "ConfigError" in r.stderr


def test_missing_file(cli):
    r = cli("validate", "nope.yaml")
    assert r.returncode == 1 and "nope.yaml" in r.stderr and "finetune-nb init" in r.stderr


def test_no_command_prints_usage(cli):
    r = cli()
    assert r.returncode == 2 and "usage: finetune-nb" in r.stderr


def test_flags_after_subcommand(cli, tmp_path):
    assert cli("init", "c.yaml", "-q").returncode == 0
    assert cli("validate", "c.yaml", "-vv").returncode == 0


def test_validate_does_not_import_torch(tmp_path):
    "validate is instant: it must not pull in torch or transformers."
    code = ("import sys\nfrom finetune_nb.cli import main\nmain(['init', 'c.yaml', '-q'])\nmain(['validate', 'c.yaml'])\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_run_notebook_command(cli, tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    nb = new_notebook(cells=[new_code_cell("steps = 1\nname = 'a'", metadata={"tags": ["parameters"]}),
                             new_code_cell("print(type(steps).__name__, steps, name)\nassert steps < 100, 'too many'")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "wf.ipynb")
    r = cli("run-notebook", "wf.ipynb", "-p", "steps", "20", "-p", "name", "b", "-o", "out.ipynb", "-q")
    assert r.returncode == 0, r.stderr
    assert "int 20 b" in (tmp_path / "out.ipynb").read_text()
    r = cli("run-notebook", "wf.ipynb", "-p", "steps", "500", "-o", "bad.ipynb", "-q")
    assert r.returncode == 1 and "cell 2 failed with AssertionError: too many" in r.stderr and "bad.ipynb" in r.stderr
    r = cli("run-notebook", "wf.ipynb", "-p", "hf_token", "abc", "-q")
    assert r.returncode == 1 and "looks like a secret" in r.stderr


def test_export_commands_end_to_end(cli, tmp_path):
    "merge-adapter -> export -> deploy-ollama, as a user runs them after training."
    assert cli("init", "c.yaml", "-q").returncode == 0
    code = ("from finetune_nb.config import FineTuneConfig\nfrom finetune_nb.tiny import builtin_model\n"
            "from finetune_nb.testing import make_test_adapter\nc = FineTuneConfig.from_yaml('c.yaml')\n"
            "make_test_adapter(builtin_model('builtin:tiny-llama'), c.run_dir / 'adapter')\n")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=300)
    r = cli("merge-adapter", "c.yaml", "-q")
    assert r.returncode == 0, r.stderr
    r = cli("export", "c.yaml", "--quant", "f16", "-q")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "c"
    assert (run / "model-f16.gguf").stat().st_size > 0 and "FROM ./model-f16.gguf" in (run / "Modelfile").read_text()
    r = cli("deploy-ollama", "c.yaml", env={"PATH": os.path.dirname(sys.executable)})
    assert r.returncode == 0 and "ollama create c -f" in r.stdout


def test_feedback_and_models_commands(cli, tmp_path):
    assert cli("init", "c.yaml", "-q").returncode == 0
    (tmp_path / "out.jsonl").write_text('{"input": "What is 2+2?", "output": "4", "rating": 5}\n{"input": "Capital of France?", "output": "Paris"}\nnot json\n')
    r = cli("feedback", "import", "out.jsonl", "-c", "c.yaml")
    assert r.returncode == 0, r.stderr
    assert "2 rows added, 0 already in the store, 1 skipped" in r.stdout and "out.jsonl:3: not valid JSON" in r.stdout
    r = cli("feedback", "export", "train_fb.jsonl", "--min-rating", "3", "-c", "c.yaml")
    assert r.returncode == 0 and r.stdout.startswith("1 rows")
    row = json.loads((tmp_path / "train_fb.jsonl").read_text())
    assert row["messages"][-1] == {"role": "assistant", "content": "4"} and row["metadata"]["source"] == "user_feedback"
    r = cli("models", "list", "-c", "c.yaml")
    assert r.returncode == 0 and "no model versions yet" in r.stdout
    r = cli("models", "rollback", "-c", "c.yaml")
    assert r.returncode == 1 and "error:" in r.stderr and "Traceback" not in r.stderr


def test_prepare_data_command(cli, tmp_path):
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "qa.jsonl").write_text("".join(json.dumps({"instruction": f"What is item {w}?", "output": f"{w} is a thing."}) + "\n"
                                                       for w in ("apple", "pear", "plum", "fig", "kiwi")) + "{broken\n")
    assert cli("init", "c.yaml", "-q").returncode == 0
    r = cli("prepare-data", "c.yaml", "-q")
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and "skipped: 1 x not valid JSON" in r.stdout
    info = json.loads((tmp_path / "runs" / "c" / "data" / "dataset_info.json").read_text())
    assert info["counts"]["train"] + info["counts"]["validation"] == 5


def _adapter_run(cli, tmp_path):
    "A config and a (random) adapter in its run folder, as training would leave them."
    assert cli("init", "c.yaml", "-q").returncode == 0
    code = ("from finetune_nb.config import FineTuneConfig\nfrom finetune_nb.tiny import builtin_model\n"
            "from finetune_nb.testing import make_test_adapter\nc = FineTuneConfig.from_yaml('c.yaml')\n"
            "make_test_adapter(builtin_model('builtin:tiny-llama'), c.run_dir / 'adapter')\n")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=300)
    return tmp_path / "runs" / "c"


def test_merge_adapter_never_deletes_a_folder_it_did_not_make(cli, tmp_path):
    run = _adapter_run(cli, tmp_path)
    (tmp_path / "p").mkdir(); (tmp_path / "p" / "thesis.txt").write_text("x")
    r = cli("merge-adapter", "c.yaml", "--out", "p", "-q")
    assert r.returncode == 1 and "is not empty and is not a merged folder made by finetune_nb" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "p" / "thesis.txt").read_text() == "x"
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cli("merge-adapter", "c.yaml", "--out", ".", "-q")
    assert r.returncode == 1 and "current folder" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    r = cli("merge-adapter", "c.yaml", "--out", str(run / "adapter"), "-q")
    assert r.returncode == 1 and "it is a finetune_nb adapter folder" in r.stderr and (run / "adapter" / "adapter_config.json").is_file()
    for _ in range(2):  # our own merged folder is replaced by the next merge
        r = cli("merge-adapter", "c.yaml", "-q")
        assert r.returncode == 0, r.stderr
    assert (run / "merged" / "config.json").is_file() and not [p for p in run.iterdir() if p.name.startswith(".merged")]


def test_train_resume_with_only_damaged_checkpoints_names_the_files(cli, tmp_path):
    assert cli("init", "c.yaml", "-q").returncode == 0
    run = tmp_path / "runs" / "c"
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": f"{2 * i}."}]} for i in range(8)]
    (run / "data").mkdir(parents=True)
    (run / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ck = run / "checkpoints" / "checkpoint-3"; ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text('{"global_step": 3, "log_hist')  # cut off mid-write
    (ck / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")  # a header and nothing else
    r = cli("train", "c.yaml", "--resume", "-q")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()[-1]
    assert "no intact checkpoint to resume from" in err and "checkpoint-3/trainer_state.json: unreadable" in err, r.stderr
    assert "checkpoint-3/adapter_model.safetensors: cut off" in err and "without --resume" in err


def test_the_config_is_found_without_naming_it(cli, tmp_path):
    assert cli("init", "-q").returncode == 0  # finetune.yaml
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")  # YAML that is not a config is never picked
    r = cli("validate")
    assert r.returncode == 0 and r.stdout.startswith("finetune.yaml: valid"), r.stderr
    (tmp_path / "finetune.yaml").rename(tmp_path / "mine.yaml")
    r = cli("validate")
    assert r.returncode == 0 and r.stdout.startswith("mine.yaml: valid")
    (tmp_path / "other.yaml").write_text("project: {name: other}\n")
    r = cli("validate")
    assert r.returncode == 1 and "2 finetune_nb configs" in r.stderr and "mine.yaml, other.yaml" in r.stderr
    assert cli("validate", "-c", "other.yaml").returncode == 0 and cli("feedback", "stats", "-c", "other.yaml").returncode == 0
    (tmp_path / "sub").mkdir()
    r = cli("validate", cwd=tmp_path / "sub")
    assert r.returncode == 1 and "no config given" in r.stderr and "finetune-nb init" in r.stderr


def test_overrides_are_validated_like_the_file_and_the_run_saves_them(cli, tmp_path):
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "qa.jsonl").write_text("".join(json.dumps({"instruction": f"What is {w}?", "output": f"{w} is a fruit."}) + "\n"
                                                               for w in ("apple", "pear", "plum", "fig")))
    assert cli("init", "-q").returncode == 0
    r = cli("validate", "--batch-size", "1e29")
    assert r.returncode == 1 and "--batch-size 1e29: training.batch_size" in r.stderr
    r = cli("run", "--prepare-only", "--set", "training.learnig_rate=1e-4")
    assert r.returncode == 1 and "--set training.learnig_rate=1e-4: training.learnig_rate: unknown key; did you mean 'learning_rate'?" in r.stderr
    r = cli("run", "--set", "data.langchain.qa_model_name=sk-ant-api03-" + "x" * 40)
    assert r.returncode == 1 and "value hidden" in r.stderr and "x" * 40 not in r.stderr
    r = cli("run", "--prepare-only", "-q", "--epochs", "7", "--learning-rate", "3e-4", "--model-name", "builtin:tiny-qwen2",
            "--set", "model.target_modules=[q_proj, v_proj]", "--use-quantization")
    assert r.returncode == 0, r.stderr
    saved = FineTuneConfig.from_yaml(tmp_path / "runs" / "finetune" / "config.yaml")
    assert (saved.training.num_epochs, saved.training.learning_rate, saved.model.model_name, saved.model.target_modules, saved.model.use_qlora) == \
        (7, 3e-4, "builtin:tiny-qwen2", ["q_proj", "v_proj"], True)


def test_careless_arguments_are_named(cli, tmp_path):
    assert cli("init", "-q").returncode == 0
    r = cli("chat", "-p", "hi", "--max-new-tokens", "-5")
    assert r.returncode == 2 and "argument --max-new-tokens: must be a whole number above 0, got '-5'" in r.stderr
    r = cli("train", "--num-processes", "0")
    assert r.returncode == 2 and "argument --num-processes" in r.stderr
    r = subprocess.run([sys.executable, "-m", "finetune_nb", "chat", "-i"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: os.close(0))  # started with stdin closed, as `<&-` or some job runners do
    assert r.returncode == 1 and "standard input, which is closed" in r.stderr and "Traceback" not in r.stderr
    r = cli("train")
    assert r.returncode == 1 and "train.jsonl: no prepared training data" in r.stderr and "prepare-data" in r.stderr
    r = cli("run", "--force", "evalaute")
    assert r.returncode == 1 and "no stage named 'evalaute' to force" in r.stderr and not (tmp_path / "runs").exists()
    r = cli("run-notebook", "wf.ipynb", "-p", "name", "[draft")
    assert r.returncode == 1 and "-p name [draft: not a YAML value" in r.stderr


def test_a_feedback_store_that_is_not_ours_is_refused_untouched(cli, tmp_path):
    import sqlite3
    (tmp_path / "notes.db").write_text("my notes\n")
    with sqlite3.connect(tmp_path / "app.db") as c: c.execute("CREATE TABLE users (id INTEGER)")
    app = (tmp_path / "app.db").read_bytes()
    for store, needle in (("notes.db", "notes.db is not an SQLite database"), ("app.db", "app.db is another program's SQLite database (tables: users)")):
        (tmp_path / "c.yaml").write_text(f"feedback: {{store_path: {store}}}\n")
        r = cli("feedback", "stats", "-c", "c.yaml")
        assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert (tmp_path / "notes.db").read_text() == "my notes\n" and (tmp_path / "app.db").read_bytes() == app


def test_generate_qa_on_its_own_reads_and_splits_the_documents(cli, tmp_path):
    from finetune_nb.testing import KEY, FakeAnthropic
    (tmp_path / "data" / "raw").mkdir(parents=True)
    for name in ("pumps", "valves"): (tmp_path / "data" / "raw" / f"{name}.md").write_text(f"# {name}\n\nEvery {name[:-1]} is serviced yearly.\n")
    assert cli("init", "-q").returncode == 0
    with FakeAnthropic() as server:
        r = cli("generate-qa", "--set", "data.langchain.qa_pairs_per_chunk=2", env={"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": KEY})
        assert r.returncode == 0, r.stderr
        assert server.message_requests == 2
    data = tmp_path / "runs" / "finetune" / "data"
    assert len((data / "chunks.jsonl").read_text().splitlines()) == 2 and len((data / "qa.jsonl").read_text().splitlines()) == 4
    assert "4 examples from 2/2 chunks" in r.stdout


def test_a_damaged_model_file_is_named_before_anything_loads(cli, tmp_path):
    run = _adapter_run(cli, tmp_path)
    w = run / "adapter" / "adapter_model.safetensors"
    w.write_bytes(w.read_bytes()[:-64])  # an interrupted copy
    for args in (("chat", "c.yaml", "-p", "hi"), ("evaluate", "c.yaml"), ("merge-adapter", "c.yaml")):
        r = cli(*args, "-q")
        assert r.returncode == 1 and "adapter_model.safetensors: cut off:" in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    (tmp_path / "x.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 9)
    r = cli("chat", "--model", "x.gguf", "-p", "hi")
    assert r.returncode == 1 and "x.gguf is damaged: x.gguf: unreadable" in r.stderr, r.stderr


def test_output_piped_into_a_reader_that_stops_is_no_error(tmp_path):
    "`finetune-nb validate | head -1`: a real pipe whose reader has gone (was: 'unexpected BrokenPipeError')."
    (tmp_path / "cfg.yaml").write_text("project: {name: x}\n")
    r, w = os.pipe(); os.close(r)  # nobody will ever read: the first write fails with EPIPE
    try: p = subprocess.run([sys.executable, "-m", "finetune_nb", "validate", "cfg.yaml"], stdout=w, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=120)
    finally: os.close(w)
    assert p.returncode == 141 and p.stderr == "", p.stderr


def test_an_override_that_is_not_utf8_is_named(cli, tmp_path):
    "A Latin-1 folder name given with --set reaches Python as an escaped byte; a config holds text only, so say so."
    (tmp_path / "cfg.yaml").write_text("project: {name: x}\n")
    p = subprocess.run([sys.executable.encode(), b"-m", b"finetune_nb", b"validate", b"cfg.yaml", b"--set", b"data.input_path=caf\xe9"],
                       capture_output=True, cwd=tmp_path, timeout=120)
    err = p.stderr.decode("utf-8", "backslashreplace")
    assert p.returncode == 1 and "data.input_path: holds the byte 0xe9, which is not UTF-8" in err and "unexpected" not in err, err


def test_config_search_passes_over_pipes_and_deep_yaml(tmp_path):
    "No config given: a real FIFO named *.yaml (was: the command blocked forever) and YAML nested 5000 deep (was: unexpected RecursionError)."
    os.mkfifo(tmp_path / "feed.yaml"); (tmp_path / "deep.yaml").write_text("[" * 5000 + "]" * 5000)
    run = lambda: subprocess.run([sys.executable, "-m", "finetune_nb", "validate"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    r = run()
    assert r.returncode == 1 and "no config given, and no finetune.yaml or other finetune_nb config in" in r.stderr, r.stderr
    (tmp_path / "mine.yaml").write_text("project: {name: found}\n")
    r = run()
    assert r.returncode == 0 and "found" in r.stdout, r.stderr
