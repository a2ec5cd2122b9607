"The offline model factory and the safe loader."
import json, logging, os, subprocess, sys
import pytest
from finetune_nb.config import FineTuneConfig
from finetune_nb.core import ConfigError, FineTuningNotSupportedError
from finetune_nb.models import folder_digest, load_model, make_tiny_model

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
    code = "import sys; from finetune_nb.models import make_tiny_model; make_tiny_model(sys.argv[1], 'qwen2')"
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
    from finetune_nb.models import builtin_model
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
