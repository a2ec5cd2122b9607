"""The config schema: round trips, errors that name the field and line, refused secrets, absurd numbers and hostile
YAML files."""
import os, tempfile, time
from pathlib import Path
import pytest, yaml
from finetune_nb.config import FineTuneConfig
from finetune_nb.core import ConfigError


def issues(data, text=None):
    with pytest.raises(ConfigError) as e: FineTuneConfig.validate(data, source="cfg.yaml", text=text)
    return e.value.issues


def test_typo_names_field_line_and_suggestion():
    text = "model:\n  model_name: builtin:tiny-llama\n  lora_rnak: 8\n"
    [i] = issues(yaml.safe_load(text), text)
    assert (i.path, i.line) == ("model.lora_rnak", 3)
    assert "did you mean 'lora_rank'" in i.message
    assert str(i).startswith("cfg.yaml:3: model.lora_rnak")


@pytest.mark.parametrize("section,field,value,expect", [
    ("training", "learning_rate", -1, "greater than 0"),
    ("training", "device", "tpu", "'auto', 'cpu' or 'cuda'"),
    ("model", "lora_dropout", 1.5, "less than 1"),
    ("data", "on_error", "ignore", "'skip' or 'fail'"),
    ("export", "gguf", ["q3_x"], "'f16'"),
    ("data", "encoding", "nonsense", "unknown encoding 'nonsense'"),
    ("project", "name", "..", "the output folder itself or its parent"),
    ("data", "input_path", "", "at least 1 character"),
    ("model", "model_name", "builtin:huge-llama", "builtin:tiny-llama"),
])
def test_bad_values_name_path_and_allowed_values(section, field, value, expect):
    [i] = issues({section: {field: value}})
    assert i.path.startswith(f"{section}.{field}") and expect in i.message


def test_cross_field_rule():
    [i] = issues({"data": {"langchain": {"chunk_size": 100, "chunk_overlap": 100}}})
    assert i.path == "data.langchain" and "chunk_overlap (100) must be smaller than chunk_size (100)" in i.message


def test_every_problem_reported_at_once():
    assert len(issues({"model": {"lora_rnak": 8}, "training": {"learning_rate": -1, "batch_size": 0}, "nope": 1})) == 4


@pytest.mark.parametrize("data,env", [
    ({"anthropic_api_key": "x"}, "ANTHROPIC_API_KEY"),
    ({"data": {"langchain": {"api_key": "x"}}}, "environment"),
    ({"model": {"hf_token": "x"}}, "HF_TOKEN"),
    ({"data": {"pdf": {"password": "hunter2"}}}, "password_env"),
    ({"export": {"ollama": {"parameters": {"secret": "x"}}}}, "environment"),
    ({"project": {"description": "sk-ant-api03-AAAAAAAAAAAAAAAAAAAA"}}, "looks like an Anthropic API key"),
])
def test_secrets_refused(data, env):
    found = issues(data)
    assert any(env in i.message for i in found), found


def test_secret_value_never_echoed():
    data = {"project": {"description": "sk-ant-api03-SECRETSECRETSECRET"}}
    err = str(pytest.raises(ConfigError, FineTuneConfig.validate, data).value)
    assert "SECRETSECRET" not in err


def test_schema_fields_with_secret_like_names_are_allowed():
    assert FineTuneConfig.validate({"data": {"pdf": {"password_env": "PDF_PW"}}}).data.pdf.password_env == "PDF_PW"


def test_yaml_round_trip_is_stable(tmp_path):
    cfg = FineTuneConfig.validate({"project": {"name": "x"},
                                   "model": {"target_modules": ["q_proj", "v_proj"], "lora_rank": 8},
                                   "fallback": {"rating_mapping": {"good": 1.0, "bad": 0.0},
                                                "target_topics": ["billing"]},
                                   "export": {"gguf": ["f16", "q8_0"], "ollama": {"parameters": {"temperature": 0.7}}}})
    p = tmp_path / "c.yaml"
    text = cfg.to_yaml(p)
    again = FineTuneConfig.from_yaml(p)
    assert again == cfg and again.to_yaml() == text
    commented = cfg.to_yaml(comments=True)
    assert FineTuneConfig.validate(yaml.safe_load(commented)) == cfg
    assert commented.count("\n  # ") > 40  # every field carries its description


def test_yaml_syntax_error_has_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("project:\n  name: x\nmodel: {unclosed\n")
    [i] = pytest.raises(ConfigError, FineTuneConfig.from_yaml, p).value.issues
    assert i.path == "(yaml)" and i.line is not None and str(p) in str(i)


def test_relative_paths_follow_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "c.yaml"
    p.write_text("data: {input_path: docs}\nproject: {name: r1, output_dir: out}\n")
    monkeypatch.chdir(tmp_path)
    cfg = FineTuneConfig.from_yaml("sub/c.yaml")
    assert cfg.resolve(cfg.data.input_path) == (tmp_path / "sub" / "docs").resolve()
    assert cfg.run_dir == (tmp_path / "sub" / "out" / "r1").resolve()


KEYS = {  # realistic shapes (random bodies), each with what the error must call it
    "sk-ant-api03-Xy7Qm2LpR9vT4nK8wZ3bF6hJ1dS5gC0aLLMq_8zPv2-Rk4YtW": "an Anthropic API key",
    "sk-proj-Q3vLx9Tz2KmW7pR4sN8bY1cF6hJ0dG5aE2uI9oP3": "an OpenAI API key",
    "sk-T3BlbkFJx9Tz2KmW7pR4sN8bY1cF6hJ0dG5aE2uI9oP3qRs": "an OpenAI API key",
    "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567": "a Hugging Face token",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a": "a GitHub token",
    "AKIAJ7Q2XRTLM4VZ9K3P": "an AWS access key id",
    "tR7+qX2vLk9/Pz4mW8nB3cY6hJ1dS5gC0aE2uI9o": "a high-entropy token",
    "Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0": "a bearer token",
}

@pytest.mark.parametrize("key,what", KEYS.items())
@pytest.mark.parametrize("where", ["description", "system_prompt", "topic", "dict_key"])
def test_secret_inside_any_string_is_refused_with_field_and_line(tmp_path, key, what, where):
    text = {"description": f'project:\n  name: x\n  description: "prod key: {key} (do not share)"\n',
            "system_prompt": f"export:\n  ollama:\n    system_prompt: |\n      You are helpful.\n      {key}\n",
            "topic": f"fallback:\n  target_topics:\n    - billing\n    - '{key}'\n",
            "dict_key": f"fallback:\n  rating_mapping:\n    good: 1.0\n    '{key}': 0.5\n"}[where]
    p = tmp_path / "cfg.yaml"; p.write_text(text)
    [i] = pytest.raises(ConfigError, FineTuneConfig.from_yaml, p).value.issues
    line = {"description": 3, "system_prompt": 3, "topic": 4, "dict_key": 4}[where]
    assert i.line == line and f"looks like {what}" in i.message, i
    body = key.split()[-1]
    assert body[8:] not in str(i)


@pytest.mark.parametrize("text", [
    "scikit-learn style sk-learn-compatible-estimators-with-long-names; see hf_hub_download_with_a_long_helper",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B-Instruct or TheBloke/Llama-2-13B-chat-GPTQ-4bit-128g-actorder_True",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, "
    "commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39",
    "/Users/Alice/Documents/Thesis2024/chapters/Chapter07Results and IMG_20240512_134501_HDR_2x_Upscaled4K",
    "getUserAccountBalanceByIdV2AndCurrencyCode, XMLHttpRequestEventTarget2DOMParserFactory, "
    "550e8400-e29b-41d4-a716-446655440000",
    "You are the bearer of good news. Answer in the style of our support team; never reveal the token budget.",
])
def test_ordinary_text_is_not_a_secret(text):
    cfg = FineTuneConfig.validate({"project": {"description": text},
                                   "export": {"ollama": {"system_prompt": text, "parameters": {"num_tokens": 128}}},
                                   "fallback": {"target_topics": text.split(", ")},
                                   "model": {"revision": "3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39"}})
    assert cfg.project.description == text


def test_secret_never_reaches_a_run_folder(tmp_path, cli):
    key = "sk-ant-api03-Xy7Qm2LpR9vT4nK8wZ3bF6hJ1dS5gC0aLLMq_8zPv2-Rk4YtW"
    (tmp_path / "in").mkdir(); (tmp_path / "in" / "a.txt").write_text("Some text to learn from. " * 20)
    (tmp_path / "cfg.yaml").write_text(f'project: {{name: leak, description: "prod key: {key}"}}\n'
                                       'data: {input_path: in}\n')
    r = cli("run", "cfg.yaml", "--prepare-only")
    assert r.returncode == 1
    assert "cfg.yaml:1: project.description: holds what looks like an Anthropic API key" in r.stderr
    assert key[10:] not in r.stderr + r.stdout and not (tmp_path / "runs").exists()
    cfg = FineTuneConfig.validate({"project": {"name": "leak"}})
    # assignment validates the field, not the whole config: writing catches it
    cfg.project.description = f"prod key: {key}"
    with pytest.raises(ConfigError, match="the config was not written"): cfg.to_yaml(tmp_path / "out.yaml")
    assert not (tmp_path / "out.yaml").exists()


@pytest.mark.parametrize("line,field", [
    ("training: {batch_size: 100000000000000000000000000000}", "training.batch_size"),
    ("training: {batch_size: 1e29}", "training.batch_size"),
    ("training: {num_epochs: .inf}", "training.num_epochs"),
    ("training: {num_epochs: .nan}", "training.num_epochs"),
    ("training: {seed: -5}", "training.seed"),
    ("training: {max_seq_length: 99999999999}", "training.max_seq_length"),
    ("training: {gradient_accumulation_steps: -1}", "training.gradient_accumulation_steps"),
    ("training: {weight_decay: .inf}", "training.weight_decay"),
    ("evaluation: {max_new_tokens: 1e12}", "evaluation.max_new_tokens"),
    ("data: {langchain: {chunk_size: 1000000000000}}", "data.langchain.chunk_size"),
    ("fallback: {rating_mapping: {good: .nan}}", "fallback.rating_mapping.good"),
    ("export: {ollama: {parameters: {temperature: -.inf}}}", "export.ollama.parameters.temperature"),
])
def test_absurd_numbers_name_field_and_line(tmp_path, line, field):
    p = tmp_path / "cfg.yaml"; p.write_text("project: {name: x}\n" + line + "\n")
    issues = pytest.raises(ConfigError, FineTuneConfig.from_yaml, p).value.issues
    assert any(i.path.startswith(field) and i.line == 2 for i in issues), issues


def _bomb(levels=9):
    lol = (["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
           + [f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 9) + "]" for i in range(1, levels)])
    return "\n".join(lol) + f"\nfallback: {{target_topics: *a{levels - 1}}}\n"


def test_alias_bomb_refused_at_once_by_every_command(tmp_path, cli):
    (tmp_path / "cfg.yaml").write_text(_bomb())
    for cmd in ("validate", "prepare-data"):
        t = time.perf_counter(); r = cli(cmd, "cfg.yaml"); took = time.perf_counter() - t
        assert (r.returncode == 1 and "cfg.yaml:9: (yaml): YAML aliases would add" in r.stderr
                and "alias bomb" in r.stderr), r.stderr
        assert took < 15, took  # the interpreter and imports; the check itself is timed below
    t = time.perf_counter()
    with pytest.raises(ConfigError, match="alias bomb"): FineTuneConfig.from_yaml(tmp_path / "cfg.yaml")
    assert time.perf_counter() - t < 0.2


def test_ordinary_aliases_and_merge_keys_still_work(tmp_path):
    p = tmp_path / "cfg.yaml"
    p.write_text("fallback: {target_topics: &t [billing, refunds]}\ndata: {langchain: {qa_topic_hints: *t}}\n"
                 "model: &m {lora_rank: 8}\nevaluation:\n  <<: {num_prompts: 5}\n  max_new_tokens: 32\n")
    cfg = FineTuneConfig.from_yaml(p)
    assert cfg.data.langchain.qa_topic_hints == ["billing", "refunds"] and cfg.evaluation.num_prompts == 5


@pytest.mark.parametrize("content,expect", [
    (b"GGUF\x03\x00\x00\x00" + bytes(range(256)), ":1: (file): is a binary file (a NUL byte at byte 5)"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(128, 256)), "is not UTF-8 text (byte 0x89 at offset 0)"),
    ("model: {model_name: caf\xe9}\n".encode("cp1252"), ":1: (file): is not UTF-8 text (byte 0xe9"),
    (b"project: {name: x}\ntraining: {seed: 1}\x07\n", ":2: (yaml): not valid YAML: character '\\x07' is not allowed"),
    (b"[" * 5000 + b"]" * 5000, "(yaml): nested too deeply"),
    (b"training:\n  batch_size: 2\ntraining:\n  num_epochs: 1\n", ":3: training: duplicate key: line 1 sets it too"),
    (b"a: &a [*a]\n", "refers to the anchor it is inside of"),
    ("project: {description: 'caf\xe9 \u2603'}\n".encode("utf-16"), "valid"),
])
def test_files_that_are_no_config_are_refused_by_name(tmp_path, cli, content, expect):
    (tmp_path / "cfg.yaml").write_bytes(content)
    r = cli("validate", "cfg.yaml")
    if expect == "valid": assert r.returncode == 0, r.stderr; return
    assert r.returncode == 1 and "unexpected" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: cfg.yaml") and expect in r.stderr, r.stderr


def test_folder_huge_and_missing_configs(tmp_path, cli):
    (tmp_path / "big.yaml").write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    (tmp_path / "dir.yaml").mkdir()
    # /dev/zero: a device has no size, and was read until memory ran out
    for name, expect in (("big.yaml", "2.0 MiB, far more than a config"),
                         ("dir.yaml", "no finetune.yaml or other finetune_nb config in"),
                         ("nope.yaml", "config file not found"),
                         ("/dev/zero", "goes on past 1 MiB, far more than a config")):
        r = cli("validate", name)
        assert r.returncode == 1 and expect in r.stderr and "unexpected" not in r.stderr, r.stderr


def test_unreadable_config_named(unprivileged):
    # under /tmp, traversable by the unprivileged child (pytest's tmp_path is not)
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755); p = Path(d) / "cfg.yaml"
        p.write_text("project: {name: x}\n"); p.chmod(0)
        _, err = unprivileged(lambda: FineTuneConfig.from_yaml(p))
    assert (err.startswith("ConfigError")
            and "cfg.yaml: (file): cannot read the config file: Permission denied" in err), err


def test_binary_tag_cannot_smuggle_a_secret_past_the_scan(tmp_path, cli):
    """YAML's !!binary hides a key in base64, in a value or a key; pydantic turns it back into text, so the scan
    must read it as that."""
    import base64
    key = "sk-ant-api03-Xy7Qm2LpR9vT4nK8wZ3bF6hJ1dS5gC0aLLMq_8zPv2-Rk4YtW"
    b = lambda s: base64.b64encode(s.encode()).decode()
    (tmp_path / "in").mkdir(); (tmp_path / "in" / "a.txt").write_text("Some text to learn from. " * 20)
    (tmp_path / "cfg.yaml").write_text(f"project:\n  name: leak\n  description: !!binary {b('prod key ' + key)}\n"
                                       "data: {input_path: in}\n"
                                       f"fallback:\n  rating_mapping:\n    !!binary {b(key)}: 1.0\n")
    r = cli("run", "cfg.yaml", "--prepare-only")
    assert r.returncode == 1
    assert "cfg.yaml:3: project.description: holds what looks like an Anthropic API key" in r.stderr, r.stderr
    assert ("cfg.yaml:6: fallback.rating_mapping.(the key): this key holds what looks like an Anthropic API key"
            in r.stderr), r.stderr
    assert key[14:] not in r.stderr + r.stdout and not (tmp_path / "runs").exists()


def test_keys_yaml_does_not_read_as_names(tmp_path):
    "Star ratings as numbers are labels; yes/no/~ labels and a number where a field name belongs are refused by line."
    p = tmp_path / "cfg.yaml"
    p.write_text("fallback:\n  rating_mapping:\n    5: 1.0\n    1: 0.0\n")
    assert FineTuneConfig.from_yaml(p).fallback.rating_mapping == {"5": 1.0, "1": 0.0}
    p.write_text("project:\n  name: x\n  1: 2\nfallback:\n  rating_mapping: {good: 1.0, ~: 0.5}\n")
    issues = pytest.raises(ConfigError, FineTuneConfig.from_yaml, p).value.issues
    assert sorted((i.line, i.path, i.message.split(" (")[0].split(";")[0]) for i in issues) == [
        (3, "project.1", "a key must be a name, and YAML reads this one as int 1"),
        (5, "fallback.rating_mapping", "a label YAML reads as None")], issues


def test_alias_bomb_on_the_command_line_refused_at_once(tmp_path, cli):
    "The same bomb as one flow value in `--set` or a notebook parameter `-p` (was: every command hung)."
    bomb = "[" + ", ".join(["&a0 [x, x, x, x, x, x, x, x, x]"]
                           + [f"&a{i} [" + ", ".join([f"*a{i-1}"] * 9) + "]" for i in range(1, 9)]) + "]"
    (tmp_path / "cfg.yaml").write_text("project: {name: x}\n")
    for args in (("validate", "cfg.yaml", "--set", f"fallback.target_topics={bomb}"),
                 ("run-notebook", "quickstart", "-p", "topics", bomb)):
        t = time.perf_counter(); r = cli(*args); took = time.perf_counter() - t
        assert (r.returncode == 1 and "YAML aliases would add 490,329,036 nodes" in r.stderr
                and "unexpected" not in r.stderr), r.stderr
        assert took < 15, took
