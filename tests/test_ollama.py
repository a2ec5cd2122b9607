"""Ollama in and out: the local store read as Ollama lays it out (around the real SmolLM2 GGUF), its damage found,
the source template proven against the model's own chat template, deploy over Ollama's HTTP API, and `tune`."""
import hashlib, json, os, sys
from pathlib import Path

import pytest

from finetune_nb.config import FineTuneConfig
from finetune_nb.core import ExportError
from finetune_nb.export import export_gguf, merge_adapter
from finetune_nb.testing import FakeOllama, make_test_adapter
from finetune_nb.models import real_model_path
from finetune_nb.tiny import make_tiny_model
from finetune_nb.ollama import (check_source_template, deploy_ollama, parse_modelfile, render_go_template,
                                write_modelfile)
from finetune_nb.ollama_store import OllamaStoreError, add_to_ollama_store, list_ollama_models, read_ollama_model

SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
# The ChatML template of the Ollama library's SmolLM2 (system block from .System, tools, $last, the legacy branch)
SMOLLM2_TEMPLATE = """{{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""
SMOLLM2_PARAMS = {"stop": ["<|im_start|>", "<|im_end|>"]}
LICENSE = "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/"


def smollm2_store(root):
    "An Ollama store holding smollm2:135m, laid out as `ollama pull smollm2:135m` lays it out."
    add_to_ollama_store("smollm2:135m", real_model_path("smollm2"), root, template=SMOLLM2_TEMPLATE,
                        system=SMOLLM2_SYSTEM, parameters=SMOLLM2_PARAMS, license=LICENSE)
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory): return smollm2_store(tmp_path_factory.mktemp("ollama")/"models")


def _sha256(path): return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- the store -----------------------------------------------------------------------------------

def test_store_layout_is_ollamas(store):
    manifest = store/"manifests"/"registry.ollama.ai"/"library"/"smollm2"/"135m"
    m = json.loads(manifest.read_text())
    assert m["schemaVersion"] == 2 and m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert m["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert ([l["mediaType"].rsplit(".", 1)[1] for l in m["layers"]]
            == ["model", "template", "system", "params", "license"])
    for layer in [m["config"], *m["layers"]]:  # every blob is named by the sha256 of its bytes
        blob = store/"blobs"/layer["digest"].replace(":", "-")
        assert layer["digest"] == "sha256:" + _sha256(blob) and layer["size"] == blob.stat().st_size
    config = json.loads((store/"blobs"/m["config"]["digest"].replace(":", "-")).read_text())
    assert ((config["model_format"], config["model_family"], config["model_type"], config["file_type"])
            == ("gguf", "llama", "134.52M", "Q4_1"))
    assert config["rootfs"]["diff_ids"] == [l["digest"] for l in m["layers"]]


def test_reads_model_and_layers(store, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", str(store))  # found as Ollama finds its store
    m = read_ollama_model("ollama:smollm2:135m")
    assert m.name == "smollm2:135m" and m.gguf.parent == store/"blobs"
    assert m.digest == "sha256:" + _sha256(real_model_path("smollm2")) == "sha256:" + _sha256(m.gguf)
    assert ((m.template, m.system, m.parameters, m.license)
            == (SMOLLM2_TEMPLATE, SMOLLM2_SYSTEM, SMOLLM2_PARAMS, [LICENSE]))
    assert m.provenance()["digest"] == m.digest and list_ollama_models() == ["smollm2:135m"]
    assert read_ollama_model("SmolLM2:135M").digest == m.digest  # names match case-insensitively, as in Ollama


def test_unknown_model_and_missing_store(store, tmp_path):
    with pytest.raises(OllamaStoreError,
                       match=r"smollm2:360m is not in the Ollama store at .*; it has smollm2:135m") as e:
        read_ollama_model("ollama:smollm2:360m", store)
    assert "ollama pull smollm2:360m" in str(e.value)
    with pytest.raises(OllamaStoreError, match="there is no Ollama model store at .*OLLAMA_MODELS"):
        read_ollama_model("ollama:smollm2:135m", tmp_path/"no-store")


def test_tampered_blob_is_refused(tmp_path):
    root = smollm2_store(tmp_path/"models")
    m = read_ollama_model("smollm2:135m", root)
    with open(m.gguf, "r+b") as f:  # one weight byte changed, size kept: only the digest can tell
        f.seek(m.gguf.stat().st_size // 2); b = f.read(1); f.seek(-1, 1); f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(OllamaStoreError, match=f"{m.gguf}: its content does not match its digest") as e:
        read_ollama_model("smollm2:135m", root)
    assert "ollama pull smollm2:135m" in str(e.value)


def test_manifest_pointing_at_missing_blob(tmp_path):
    root = smollm2_store(tmp_path/"models")
    manifest = root/"manifests"/"registry.ollama.ai"/"library"/"smollm2"/"135m"
    template = json.loads(manifest.read_text())["layers"][1]["digest"]
    (root/"blobs"/template.replace(":", "-")).unlink()
    with pytest.raises(OllamaStoreError,
                       match=f"{manifest}: its application/vnd.ollama.image.template layer {template} is missing"):
        read_ollama_model("smollm2:135m", root)


def test_smollm2_library_template_reproduces_its_chat_template():
    "The source template and SYSTEM give SmolLM2's own training prompts byte for byte; without its SYSTEM they do not."
    from transformers import AutoTokenizer
    path = real_model_path("smollm2")
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    check = check_source_template(SMOLLM2_TEMPLATE, tok.chat_template, tok, SMOLLM2_SYSTEM)
    assert check["identical"] and check["conversations"] == 20
    with pytest.raises(ExportError, match=r"conversation 2: at character 12 training gives "
                                          r"'system\\nYou are a helpful AI assistant na', Ollama gives 'user"):
        check_source_template(SMOLLM2_TEMPLATE, tok.chat_template, tok, None)


# -- deploy over HTTP ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    "A tiny Llama, a LoRA adapter merged into it, its f16 GGUF and Modelfile."
    tmp = tmp_path_factory.mktemp("deploy")
    base = make_tiny_model(tmp/"base", "llama")
    cfg = FineTuneConfig.validate({"project": {"name": "deploy", "output_dir": str(tmp/"runs")},
                                   "model": {"model_name": str(base)},
                                   "export": {"gguf": ["f16"], "ollama": {"system_prompt": "Be brief.",
                                                                          "parameters": {"num_predict": 64}}}})
    make_test_adapter(base, cfg.run_dir/"adapter", seed=3)
    merge_adapter(cfg)
    write_modelfile(cfg, gguf_path=export_gguf(cfg)[0])
    return cfg


@pytest.fixture
def server(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path/"no-ollama-here"))
    with FakeOllama() as s:
        monkeypatch.setenv("OLLAMA_HOST", s.url)
        yield s


def test_deploy_over_http_uploads_once_and_creates(exported, server):
    cfg, gguf = exported, exported.run_dir/"model-f16.gguf"
    r = deploy_ollama(cfg, name="tiny-tuned")
    assert r["ran"] and r["host"] == server.url and r["uploaded"] == [str(gguf)] and r["status"] == "success"
    digest = "sha256:" + _sha256(gguf)
    assert server.blob(digest).read_bytes() == gguf.read_bytes()
    req = server.creates[0]
    assert req["model"] == "tiny-tuned" and req["files"] == {"model-f16.gguf": digest} and req["stream"] is False
    assert req["system"] == "Be brief." and req["parameters"]["stop"] == ["<|im_end|>"]
    assert req["parameters"]["num_ctx"] == 2048 and req["parameters"]["num_predict"] == 64
    assert req["parameters"]["temperature"] == 0.7
    modelfile = dict(parse_modelfile((cfg.run_dir/"Modelfile").read_text()))
    assert req["template"] == modelfile["template"]
    from transformers import AutoTokenizer  # the template it carries renders what training rendered
    tok = AutoTokenizer.from_pretrained(cfg.run_dir/"merged")
    msgs = [{"role": "user", "content": "What is LoRA?"}, {"role": "assistant", "content": "A low-rank adapter."},
            {"role": "user", "content": "And QLoRA?"}]
    assert (render_go_template(req["template"], msgs)
            == tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
    again = deploy_ollama(cfg, name="tiny-tuned")  # the server has the blob: nothing is uploaded again
    assert again["uploaded"] == [] and server.count("POST", "/api/blobs/") == 1
    assert server.count("HEAD", "/api/blobs/") == 2 and len(server.creates) == 2
    assert json.loads((cfg.run_dir/"export_metadata.json").read_text())["ollama"]["host"] == server.url


def test_deploy_over_http_reports_server_errors(exported, server):
    server.fail_create = "insufficient disk space"
    with pytest.raises(ExportError, match=r"POST /api/create for tiny-tuned failed \(500\): insufficient disk space"):
        deploy_ollama(exported, name="tiny-tuned")


# -- tune ----------------------------------------------------------------------------------------

def test_tune_cli_runs_every_stage_and_hands_the_model_to_ollama(cli, tmp_path):
    "`finetune-nb tune` as a user runs it: config next to the run, every stage, the model created over HTTP, what next."
    from finetune_nb.run import quickstart_config
    samples = quickstart_config(tmp_path).data.input_path
    with FakeOllama() as server:
        env = {"PATH": os.path.dirname(sys.executable), "OLLAMA_HOST": server.url}
        r = cli("tune", "builtin:tiny-llama", samples, "--name", "faq-bot", "--steps", "4", "--output", tmp_path/"runs",
                env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.rstrip().endswith("next: ollama run faq-bot") and "machine   cpu," in r.stdout
        config, run = tmp_path/"runs"/"faq-bot.yaml", tmp_path/"runs"/"faq-bot"
        cfg = FineTuneConfig.from_yaml(config)
        assert cfg.run_dir == run and cfg.training.max_steps == 4 and cfg.export.ollama.model_name == "faq-bot"
        assert (run/"model-q8_0.gguf").is_file()
        assert server.models["faq-bot"]["files"] == {"model-q8_0.gguf": "sha256:" + _sha256(run/"model-q8_0.gguf")}
        again = cli("tune", "builtin:tiny-llama", samples, "--name", "faq-bot", "--steps", "4",
                    "--output", tmp_path/"runs", env=env)
        assert again.returncode == 0 and again.stdout.count("skipped (up to date)") == 5
        assert server.count("POST", "/api/blobs/") == 1 and len(server.creates) == 2  # the blob was not sent again
    resumed = cli("run", config)  # the config it wrote runs as it is
    assert resumed.returncode == 0 and resumed.stdout.count("skipped (up to date)") == 5
    other = cli("tune", "builtin:tiny-llama", samples, "--name", "faq-bot", "--steps", "5", "--output", tmp_path/"runs",
                env=env)
    assert other.returncode == 1 and "already holds another config (training.max_steps: 4 there, 5 now" in other.stderr


def test_cli_reads_the_store_and_names_what_it_holds(cli, store, tmp_path):
    """`validate` reads an ollama: base out of the store; `tune` with a name the store lacks fails in one line listing
    what it has, writing nothing."""
    from finetune_nb.run import quickstart_config
    env = {"OLLAMA_MODELS": str(store)}
    config = tmp_path/"smol.yaml"
    config.write_text("project:\n  name: smol\nmodel:\n  model_name: ollama:smollm2:135m\n")
    r = cli("validate", config, env=env)
    assert r.returncode == 0 and "base      source ollama, model_type llama, quant_type Q4_1" in r.stdout, r.stderr
    r = cli("tune", "smollm2:360m", quickstart_config(tmp_path).data.input_path, "--output", tmp_path/"runs", env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "smollm2:360m is not in the Ollama store" in r.stderr
    assert "it has smollm2:135m (did you mean ollama:smollm2:135m?)" in r.stderr
    assert not (tmp_path/"runs").exists()


def test_tune_from_ollama_and_back(tmp_path, monkeypatch):
    """Fine-tune ollama:smollm2:135m out of a store laid out as Ollama's, and create the result on an Ollama server: the
    source's layers travel."""
    from finetune_nb.run import quickstart_config, tune
    monkeypatch.setenv("OLLAMA_MODELS", str(smollm2_store(tmp_path/"models")))
    monkeypatch.setenv("PATH", str(tmp_path/"no-ollama-here"))
    samples = quickstart_config(tmp_path).data.input_path
    # two one-row steps and no held-out split (so no evaluation): this test is about the way in and out of Ollama
    small = {"data": {"split": {"validation_fraction": 0}},
             "training": {"max_seq_length": 256, "batch_size": 1, "gradient_accumulation_steps": 1}}
    with FakeOllama() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        r = tune("smollm2:135m", samples, name="smollm2-faq", steps=2, output_dir=tmp_path/"runs", overrides=small)
        req, gguf = server.creates[0], tmp_path/"runs"/"smollm2-faq"/"model-q8_0.gguf"
        assert server.blob("sha256:" + _sha256(gguf)).read_bytes() == gguf.read_bytes()
        # the server has the weights: nothing is uploaded again
        again = deploy_ollama(FineTuneConfig.from_yaml(r.config_path))
        assert again["uploaded"] == [] and server.count("POST", "/api/blobs/") == 1 and server.creates[1] == req
    assert r.run.mode == "finetuned" and r.deployed["ran"] and r.summary().endswith("next: ollama run smollm2-faq")
    run = r.run.run_dir
    source = json.loads((run/"run_metadata.json").read_text())["model_source"]
    assert source["source"] == "ollama"
    assert source["digest"] == "sha256:" + _sha256(real_model_path("smollm2")) == "sha256:" + source["sha256"]
    ollama = json.loads((run/"export_metadata.json").read_text())["ollama"]
    assert ollama["template_from"] == "ollama:smollm2:135m" and ollama["template_check"]["identical"]
    assert ollama["template_check"]["conversations"] > 20  # the check conversations and the first training rows
    assert ((req["model"], req["template"], req["system"], req["license"])
            == ("smollm2-faq", SMOLLM2_TEMPLATE, SMOLLM2_SYSTEM, [LICENSE]))
    assert req["parameters"] == SMOLLM2_PARAMS
    assert req["files"] == {"model-q8_0.gguf": "sha256:" + _sha256(gguf)}
