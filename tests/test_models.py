"The offline model factory and the safe loader."
import json, logging, os, signal, subprocess, sys
import pytest
from finetune_nb.config import FineTuneConfig
from finetune_nb.core import ConfigError, FineTuningNotSupportedError
from finetune_nb.models import load_model
from finetune_nb.tiny import folder_digest, make_tiny_model

LOAD_AND_GENERATE = """
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path = sys.argv[1]
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path)
msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]
enc = tok.apply_chat_template(msgs, return_dict=True, return_assistant_tokens_mask=True)
learned = tok.decode([t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m])
ids = tok.apply_chat_template(msgs[:1], add_generation_prompt=True, return_tensors="pt", return_dict=True)
out = model.generate(**ids, max_new_tokens=6, min_new_tokens=6, do_sample=False)
print(type(model).__name__, out.shape[1] - ids["input_ids"].shape[1], tok.pad_token_id != tok.eos_token_id, repr(learned))
"""


@pytest.mark.parametrize("arch,cls", [("llama", "LlamaForCausalLM"), ("qwen2", "Qwen2ForCausalLM"), ("mistral", "MistralForCausalLM")])
def test_tiny_model_loads_offline_and_generates(tmp_path, arch, cls):
    p = make_tiny_model(tmp_path / arch, arch=arch)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-hf-home")}
    r = subprocess.run([sys.executable, "-c", LOAD_AND_GENERATE, str(p)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [cls, "6", "True", "'Hello", "there<|im_end|>'"]
    meta = json.loads((p / "finetune_nb_builtin.json").read_text())
    assert meta["parameters"] < 1_000_000


def test_same_arguments_same_bytes_across_processes(tmp_path):
    code = "import sys; from finetune_nb.tiny import make_tiny_model; make_tiny_model(sys.argv[1], 'qwen2')"
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, timeout=300)
    a, b = folder_digest(tmp_path / "a"), folder_digest(tmp_path / "b")
    assert a == b and "model.safetensors" in a and "tokenizer.json" in a


def test_seed_changes_weights_only(tmp_path):
    a, b = folder_digest(make_tiny_model(tmp_path / "a", seed=0)), folder_digest(make_tiny_model(tmp_path / "b", seed=1))
    assert a["model.safetensors"] != b["model.safetensors"] and a["tokenizer.json"] == b["tokenizer.json"]


def test_small_size_for_benchmarks(tmp_path):
    meta = json.loads((make_tiny_model(tmp_path / "s", size="small") / "finetune_nb_builtin.json").read_text())
    assert 15_000_000 < meta["parameters"] < 35_000_000


def test_rebuild_replaces_folder_atomically(tmp_path):
    p = make_tiny_model(tmp_path / "m")
    (p / "stale.txt").write_text("old")
    make_tiny_model(tmp_path / "m")
    assert not (p / "stale.txt").exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m"]


def test_builtin_model_is_cached(tmp_path):
    cfg = FineTuneConfig.validate({"model": {"model_name": "builtin:tiny-mistral"}, "training": {"device": "cpu"}})
    model, tok = load_model(cfg)
    assert type(model).__name__ == "MistralForCausalLM"
    from finetune_nb.tiny import builtin_model
    w = builtin_model("builtin:tiny-mistral") / "model.safetensors"
    before = w.stat().st_mtime_ns
    load_model(cfg)
    assert w.stat().st_mtime_ns == before


def test_remote_code_refused_unless_trusted(tmp_path):
    p = make_tiny_model(tmp_path / "m")
    cfg = json.loads((p / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.Model"}
    (p / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="model.trust_remote_code"):
        load_model(FineTuneConfig.validate({"model": {"model_name": str(p)}}))


def test_missing_model_names_field(tmp_path):
    with pytest.raises(FineTuningNotSupportedError, match="model.model_name") as e:
        load_model(FineTuneConfig.validate({"model": {"model_name": str(tmp_path / "nope")}}))
    assert "offline" in e.value.hint


def test_pickle_weights_warned(tmp_path, caplog):
    import torch
    from safetensors.torch import load_file
    p = make_tiny_model(tmp_path / "m")
    torch.save(load_file(p / "model.safetensors"), p / "pytorch_model.bin")
    (p / "model.safetensors").unlink()
    with caplog.at_level(logging.WARNING, logger="finetune_nb"):
        model, _ = load_model(FineTuneConfig.validate({"model": {"model_name": str(p)}}))
    assert "no safetensors weights" in caplog.text


def test_qlora_loads_4bit_on_the_cpu_and_generates():
    import bitsandbytes as bnb
    cfg = FineTuneConfig.validate({"model": {"use_qlora": True}, "training": {"device": "cpu"}})
    q, tok = load_model(cfg)
    full, _ = load_model(FineTuneConfig.validate({"training": {"device": "cpu"}}))
    four = [m for m in q.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four) == 7 * q.config.num_hidden_layers and {m.weight.quant_type for m in four} == {"nf4"}
    assert q.device.type == "cpu" and q.get_memory_footprint() < 0.6 * full.get_memory_footprint()
    enc = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert q.generate(**enc, max_new_tokens=4, min_new_tokens=4, do_sample=False).shape[1] == enc["input_ids"].shape[1] + 4


def test_qlora_without_bitsandbytes_is_refused_with_both_ways_out(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` now raises ImportError
    with pytest.raises(FineTuningNotSupportedError, match="bitsandbytes is not installed") as e:
        load_model(FineTuneConfig.validate({"model": {"use_qlora": True}, "training": {"device": "cpu"}}))
    assert "pip install 'bitsandbytes>=" in e.value.hint and "use_qlora: false" in e.value.hint


def test_load_adapter_applies_the_saved_lora_quietly(tmp_path, monkeypatch):
    "A saved adapter loads onto the base with its weights, in eval mode, without the deprecation warning PEFT provokes."
    import warnings, torch
    from peft import LoraConfig, get_peft_model
    from finetune_nb.models import load_adapter
    monkeypatch.setenv("FINETUNE_NB_CACHE", str(tmp_path / "cache"))
    base, _ = load_model(FineTuneConfig())
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad(): want = lora(input_ids=ids).logits
    fresh, _ = load_model(FineTuneConfig())
    with torch.no_grad(): plain = fresh(input_ids=ids).logits
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        tuned = load_adapter(fresh, tmp_path / "adapter")
    assert not any("is_gradient_checkpointing" in str(w.message) for w in seen)
    assert not tuned.training
    with torch.no_grad(): got = tuned(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, plain, atol=1e-3)  # the adapter's weights, not the base's


# --- GGUF files as the base model -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    "The built-in tiny Llama as a Q8_0 GGUF file, written by the export stage."
    from finetune_nb.export import write_gguf
    d = tmp_path_factory.mktemp("gguf")
    write_gguf(make_tiny_model(d / "tiny"), d / "tiny.Q8_0.gguf", "q8_0", name="tiny")
    return d / "tiny.Q8_0.gguf"


KILL_MID_WRITE = """
import sys, time, transformers
from finetune_nb.models import gguf_folder
save = transformers.PreTrainedTokenizerBase.save_pretrained
def save_then_hang(self, *a, **kw):  # the weights are written; the process dies before the folder is complete
    out = save(self, *a, **kw); print("saved", flush=True); time.sleep(600); return out
transformers.PreTrainedTokenizerBase.save_pretrained = save_then_hang
gguf_folder(sys.argv[1], progress=False)
"""


def test_dequantized_cache_survives_a_sigkill_mid_write(tiny_gguf, tmp_path):
    "A build killed after writing the weights leaves no folder under the final name; the next build completes it and removes the debris."
    from finetune_nb.core import sha256_file
    from finetune_nb.models import GGUF_MARKER, gguf_folder
    env = {**os.environ, "FINETUNE_NB_CACHE": str(tmp_path / "cache")}
    p = subprocess.Popen([sys.executable, "-c", KILL_MID_WRITE, str(tiny_gguf)], stdout=subprocess.PIPE, text=True, env=env)
    try: assert p.stdout.readline().strip() == "saved"
    finally: p.send_signal(signal.SIGKILL); p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    cache, sha = tmp_path / "cache" / "gguf", sha256_file(tiny_gguf)
    debris = [x for x in cache.iterdir() if x.name.startswith(f".{sha}.")]
    assert not (cache / sha).exists() and len(debris) == 1 and (debris[0] / "model.safetensors").is_file()
    os.environ["FINETUNE_NB_CACHE"], old = str(tmp_path / "cache"), os.environ["FINETUNE_NB_CACHE"]
    try: folder, prov = gguf_folder(tiny_gguf, progress=False)
    finally: os.environ["FINETUNE_NB_CACHE"] = old
    assert folder == cache / sha and (folder / GGUF_MARKER).is_file() and prov["sha256"] == sha
    assert sorted(x.name for x in cache.iterdir()) == [sha]  # the killed build's temporary folder is gone


def test_gguf_base_records_its_provenance_and_loads_like_a_folder(tiny_gguf):
    from finetune_nb.models import load_tokenizer, resolve_model
    path, prov = resolve_model(str(tiny_gguf), progress=False)
    assert prov["source"] == "gguf" and prov["quant_type"] == "Q8_0" and prov["tensor_types"]["Q8_0"] > 0
    assert prov["weights"].startswith("dequantized") and prov["file"] == str(tiny_gguf)
    model, tok = load_model(FineTuneConfig.validate({"model": {"model_name": str(tiny_gguf)}, "training": {"device": "cpu"}}))
    assert model.dtype.is_floating_point and str(model.dtype) == "torch.float32"
    assert tok.chat_template and "<|im_end|>" in tok.chat_template


@pytest.mark.parametrize("cut,message", [(0.5, "the file is truncated"), (0.0005, "the file ends inside its header")])
def test_truncated_gguf_is_refused_by_validate_and_run_before_any_stage(tiny_gguf, tmp_path, cli, cut, message):
    bad = tmp_path / "models" / "cut.gguf"; bad.parent.mkdir()
    data = tiny_gguf.read_bytes(); bad.write_bytes(data[:max(30, int(len(data) * cut))])
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"project:\n  name: cut\n  output_dir: {tmp_path/'runs'}\nmodel:\n  model_name: models/cut.gguf\n")
    for cmd in ("validate", "run"):
        r = cli(cmd, cfg)
        assert r.returncode == 1 and f"run.yaml:5: model.model_name: {bad}: {message}" in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()  # nothing ran: no data prepared, no adapter, no fallback


def test_gguf_of_an_architecture_transformers_cannot_load_is_refused(tmp_path):
    from finetune_nb.core import DataError
    from finetune_nb.models import check_model
    _rwkv_gguf(tmp_path / "rwkv.gguf")
    with pytest.raises(DataError, match=r"rwkv\.gguf: its architecture 'rwkv6' cannot be read from GGUF by transformers"):
        check_model(FineTuneConfig.validate({"model": {"model_name": str(tmp_path / "rwkv.gguf")}}))


@pytest.mark.parametrize("name,arch,model_type,quant", [("smollm2", "llama", "llama", "Q4_1"), ("gemma3", "gemma3", "gemma3_text", "Q4_K_M")])
def test_real_gguf_headers(name, arch, model_type, quant):
    "The real GGUF files (fetched by scripts/fetch_real_models.py; missing ones fail, naming the command) read in well under a second."
    import time
    from finetune_nb.models import check_model, real_model_path
    t0 = time.perf_counter()
    info = check_model(FineTuneConfig.validate({"model": {"model_name": str(real_model_path(name))}}))
    assert (info["architecture"], info["model_type"], info["quant_type"]) == (arch, model_type, quant)
    assert info["chat_template"] == (name == "smollm2") and time.perf_counter() - t0 < 5


def _rwkv_gguf(path):
    "A GGUF file of an architecture (rwkv6) that transformers cannot read from GGUF."
    import gguf, numpy as np
    w = gguf.GGUFWriter(path, "rwkv6")
    w.add_tokenizer_model("gpt2"); w.add_token_list([f"t{i}" for i in range(100)])
    w.add_tensor("token_embd.weight", np.zeros((100, 8), dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


@pytest.mark.parametrize("case,message,hint", [
    ("missing", "GGUF file not found", "check model.model_name (a relative path is relative to the config file)"),
    ("not-gguf", "not a GGUF file (it does not start with the bytes GGUF)", "point model.model_name at a .gguf model file"),
    ("rwkv", "its architecture 'rwkv6' cannot be read from GGUF by transformers", "transformers reads GGUF files of: "),
])
def test_validate_names_a_bad_gguf_file_and_what_to_do(tmp_path, cli, case, message, hint):
    "A typo in the path, a file of another format renamed .gguf, an architecture transformers cannot load: validate names the file, before any stage."
    bad = tmp_path / "models" / "base.gguf"; bad.parent.mkdir()
    if case == "not-gguf": bad.write_bytes(b"PK\x03\x04" + b"\0" * 4096)  # a zip (e.g. a PyTorch checkpoint) given the wrong name
    if case == "rwkv": _rwkv_gguf(bad)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"project:\n  name: bad\n  output_dir: {tmp_path/'runs'}\nmodel:\n  model_name: models/base.gguf\n")
    r = cli("validate", cfg)
    assert r.returncode == 1 and f"run.yaml:5: model.model_name: {bad}: {message}" in r.stderr and hint in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()
