"""GGUF export of real models, proven in llama.cpp: SmolLM2-135M-Instruct (llama) and Gemma 3 270M (gemma3), each from the
GGUF that scripts/fetch_real_models.py caches, dequantized to an HF folder, written as f16 and read back by llama.cpp;
and cross-checked against llama.cpp's own converter (same tensors, byte for byte; same metadata keys)."""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

import gguf
from finetune_nb.export import check_llama_cpp, llama_cpp_pre_table, write_gguf
from real_models import ROOT, hf_folder_from_gguf, real_file, unpacked_converter


def _gemma3_template():
    "Gemma 3's chat template, as TRL ships it (the base model has none)."
    import trl
    return (Path(trl.__file__).parent/"chat_templates"/"gemma3.jinja").read_text()


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    "name -> (HF folder, our f16 GGUF, write_gguf's summary), built once per module."
    built = {}
    def get(name):
        if name not in built:
            tmp = tmp_path_factory.mktemp(name)
            folder = hf_folder_from_gguf(real_file(name), tmp/"hf", chat_template=_gemma3_template() if name == "gemma3" else None)
            built[name] = folder, tmp/"model-f16.gguf", write_gguf(folder, tmp/"model-f16.gguf", "f16")
        return built[name]
    return get


def _fields(path): return {k: f.contents() for k, f in gguf.GGUFReader(path).fields.items()}


def test_smollm2_f16_reproduced_by_llama_cpp(real, llama_cpp):
    folder, path, info = real("smollm2")
    assert (info["arch"], info["tokenizer"]["pre"], info["tokenizer"]["pre_chosen_by"]) == ("llama", "smollm", "llama.cpp hash")
    lc = check_llama_cpp(path, folder, "f16")
    assert lc["passed"] and lc["tokenizer_identical"] and lc["chat_prompts_identical"], lc["problems"]
    assert lc["greedy_identical"] and lc["greedy_steps"] >= 16  # 8 tokens per prompt unless the model ends its answer sooner
    assert lc["end_of_turn"] == "<|im_end|>" and lc["end_of_turn_is_eog"]
    assert lc["max_abs_logit_diff"] < 2e-2 * lc["max_abs_logit"] and lc["max_abs_logit"] > 10  # real logits, not a toy's ±1
    ours, original = _fields(path), _fields(real_file("smollm2"))
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                "tokenizer.ggml.merges", "tokenizer.chat_template"):
        assert ours[key] == original[key], key  # the tokenizer as HuggingFaceTB's own GGUF carries it


def test_gemma3_f16_reproduced_by_llama_cpp(real, llama_cpp):
    folder, path, info = real("gemma3")
    assert (info["arch"], info["tokenizer"]["model"], info["tokenizer"]["pre"]) == ("gemma3", "llama", "default")
    lc = check_llama_cpp(path, folder, "f16")
    assert lc["passed"] and lc["tokenizer_identical"] and lc["chat_prompts_identical"], lc["problems"]
    assert lc["greedy_identical"] and lc["end_of_turn"] == "<end_of_turn>" and lc["end_of_turn_is_eog"]
    ours, original = _fields(path), _fields(real_file("gemma3"))
    assert ours["tokenizer.ggml.eos_token_id"] == original["tokenizer.ggml.eos_token_id"] == 1  # <eos>; the turn ends at eot
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix",
                "gemma3.attention.sliding_window", "gemma3.rope.freq_base", "gemma3.attention.key_length"):
        assert ours[key] == original[key], key  # as Google's own GGUF has it


# descriptive keys llama.cpp never reads, and keys whose value is llama.cpp's default, which only the converter writes
CONVERTER_ONLY = {"general.size_label", "general.type", "general.basename", "general.finetune", "tokenizer.ggml.add_sep_token",
                  "llama.attention.key_length", "llama.attention.value_length"}


@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_same_tensors_and_keys_as_llama_cpp_converter(real, name, tmp_path):
    folder, path, _ = real(name)
    conv = unpacked_converter(tmp_path/"converter")
    env = {**os.environ, "PYTHONPATH": str(conv)}  # its own gguf module, never ours
    r = subprocess.run([sys.executable, str(conv/"convert_hf_to_gguf.py"), str(folder), "--outfile", str(tmp_path/"theirs.gguf"),
                        "--outtype", "f16"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    ours, theirs = gguf.GGUFReader(path), gguf.GGUFReader(tmp_path/"theirs.gguf")
    a, b = {t.name: t for t in ours.tensors}, {t.name: t for t in theirs.tensors}
    assert a.keys() == b.keys()
    for n in a:
        assert (a[n].tensor_type, list(a[n].shape)) == (b[n].tensor_type, list(b[n].shape)), n
        assert np.array_equal(np.asarray(a[n].data), np.asarray(b[n].data)), n
    ka, kb = set(ours.fields) - {"GGUF.kv_count"}, set(theirs.fields) - {"GGUF.kv_count"}
    assert kb - ka <= CONVERTER_ONLY, kb - ka
    # without tokenizer.model its converter writes Gemma's SentencePiece vocabulary as `gpt2` (under a hash it shares with an
    # embedding model); ours keeps Google's `llama` form, which llama.cpp tokenizes exactly (test above)
    own_tokenizer = {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.token_type"} if name == "gemma3" else set()
    for k in ka & kb - {"general.name"} - own_tokenizer:
        assert ours.fields[k].contents() == theirs.fields[k].contents(), k


def test_bundled_pre_tokenizer_table_is_the_converters():
    "finetune_nb/data/llama_cpp_pre_tokenizers.json holds exactly the check text and hash table of the converter it names."
    import importlib.util, zipfile
    spec = importlib.util.spec_from_file_location("update_llama_cpp_pre", ROOT/"scripts"/"update_llama_cpp_pre.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    table = llama_cpp_pre_table()
    whl = real_file("converter")
    assert table["source"]["version"] in whl.name
    chktxt, hashes = mod.read_table(zipfile.ZipFile(whl).read(table["source"]["file"]).decode("utf-8"))
    assert (table["chktxt"], table["pre_by_sha256"]) == (chktxt, hashes) and len(hashes) > 80
