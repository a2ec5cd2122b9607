"The config schema: round trips, errors that name the field and line, and refused secrets."
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
    ({"project": {"description": "sk-ant-api03-AAAAAAAAAAAAAAAAAAAA"}}, "looks like an API key"),
])
def test_secrets_refused(data, env):
    found = issues(data)
    assert any(env in i.message for i in found), found


def test_secret_value_never_echoed():
    err = str(pytest.raises(ConfigError, FineTuneConfig.validate, {"project": {"description": "sk-ant-api03-SECRETSECRETSECRET"}}).value)
    assert "SECRETSECRET" not in err


def test_schema_fields_with_secret_like_names_are_allowed():
    assert FineTuneConfig.validate({"data": {"pdf": {"password_env": "PDF_PW"}}}).data.pdf.password_env == "PDF_PW"


def test_yaml_round_trip_is_stable(tmp_path):
    cfg = FineTuneConfig.validate({"project": {"name": "x"}, "model": {"target_modules": ["q_proj", "v_proj"], "lora_rank": 8},
                                   "fallback": {"rating_mapping": {"good": 1.0, "bad": 0.0}, "target_topics": ["billing"]},
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
