"""Real models from their GGUF files, end to end on the CPU: SmolLM2-135M-Instruct (Llama architecture, ChatML) and the base
Gemma 3 270M (no chat template, a 262k-token vocabulary). `python scripts/fetch_real_models.py` fetches them (CI does);
a missing one fails, naming the file and that command."""
import json, subprocess, sys
from importlib.resources import files
import pytest
import yaml
from finetune_nb.models import REAL_MODELS, real_model_path

PROBES = ["Hello, world!", "naïve café — 中文 🙂", "def f(x):\n    return x**2  # square", "   three   spaces\t\ttabs", "1234567890 3.14159",
          "<|im_start|>user\nHi<|im_end|>"]


def _config(root, name, model, **over):
    "A run on the bundled samples, as small as a real model allows on two CPU cores."
    d = {"project": {"name": name, "output_dir": str(root / "runs")},
         "model": {"model_name": str(model), "lora_rank": 8, "lora_alpha": 16},
         "data": {"input_path": str(files("finetune_nb").joinpath("data/samples")), "split": {"validation_fraction": 0.15, "seed": 0}},
         "training": {"device": "cpu", "max_steps": 2, "batch_size": 1, "gradient_accumulation_steps": 1, "learning_rate": 1e-3,
                      "max_seq_length": 256, "eval_steps": 2, "save_steps": 2, "logging_steps": 1, "gradient_checkpointing": False},
         "evaluation": {"num_prompts": 2, "max_new_tokens": 12, "batch_size": 2}}
    for k, v in over.items(): d.setdefault(k, {}).update(v)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def _ids(eos):
    "A generation config's eos_token_id as a list."
    return list(eos) if isinstance(eos, (list, tuple)) else [eos]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    "SmolLM2 from its Q4_1 GGUF through `finetune-nb run`: prepare, train 2 steps, evaluate, merge, f16 GGUF (q8_0 is tested on the tiny models), Modelfile."
    root = tmp_path_factory.mktemp("smollm2")
    cfg = _config(root, "smol", real_model_path("smollm2"), export={"gguf": ["f16"]})
    r = subprocess.run([sys.executable, "-m", "finetune_nb", "run", str(cfg), "-v"], capture_output=True, text=True, timeout=2400)
    assert r.returncode == 0, r.stderr[-4000:]
    return root / "runs" / "smol", r


def test_smollm2_runs_every_stage_from_its_gguf(smollm2):
    run, r = smollm2
    meta = json.loads((run / "run_metadata.json").read_text())
    assert meta["mode"] == "finetuned" and meta["status"] == "success", meta
    assert [s["name"] for s in meta["stages"]] == ["prepare-data", "train", "evaluate", "merge", "export"]
    assert all(s["status"] == "ran" for s in meta["stages"])
    src = meta["model_source"]
    assert src["source"] == "gguf" and src["sha256"] == REAL_MODELS["smollm2"]["sha256"] and src["quant_type"] == "Q4_1"
    assert src["weights"] == "dequantized from the GGUF file to float32" and src["model_type"] == "llama"


def test_smollm2_trains_on_its_own_template_with_its_stop(smollm2):
    run, _ = smollm2
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["base_model_source"]["sha256"] == REAL_MODELS["smollm2"]["sha256"]
    assert meta["stop_tokens"] == ["<|im_end|>"] and meta["pad_token"] == "pad was '<|im_end|>'; using existing token '<|endoftext|>'"
    assert meta["data"]["train"]["rows_without_eos"] == 0 and meta["global_step"] == 2
    ev = json.loads((run / "eval" / "metrics.json").read_text())
    assert set(ev["systems"]) == {"base", "tuned"} and all(s["eval_loss"] < 10 for s in ev["systems"].values())


def test_smollm2_exports_verified_gguf_and_modelfile(smollm2):
    from transformers import AutoTokenizer, GenerationConfig
    run, _ = smollm2
    ex = json.loads((run / "export_metadata.json").read_text())
    assert ex["gguf"]["f16"]["verification"]["passed"] and ex["gguf"]["f16"]["verification"]["greedy_identical"]
    assert (run / "model-f16.gguf").stat().st_size > 200_000_000
    assert ex["gguf"]["f16"]["verification"]["tokenizer_identical"] and ex["gguf"]["f16"]["verification"]["template_identical"]
    tok = AutoTokenizer.from_pretrained(run / "merged")
    assert "You are a helpful AI assistant named SmolLM" in tok.chat_template  # its own template, not a fallback
    assert _ids(GenerationConfig.from_pretrained(run / "merged").eos_token_id) == [2] and tok.convert_ids_to_tokens(2) == "<|im_end|>"
    assert 'PARAMETER stop "<|im_end|>"' in (run / "Modelfile").read_text()


def test_smollm2_cached_folder_tokenizes_like_the_gguf(smollm2):
    "The dequantized folder's tokenizer is the one transformers reads from the GGUF file: same ids, template and specials."
    from transformers import AutoTokenizer
    run, _ = smollm2
    folder = json.loads((run / "run_metadata.json").read_text())["model_source"]["folder"]
    path = real_model_path("smollm2")
    ours, theirs = AutoTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    assert [ours(p)["input_ids"] for p in PROBES] == [theirs(p)["input_ids"] for p in PROBES]
    assert (ours.chat_template, ours.eos_token, ours.bos_token) == (theirs.chat_template, theirs.eos_token, theirs.bos_token)


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory):
    "The base Gemma 3 270M (no chat template) through `finetune-nb quickstart --model PATH.gguf`, shrunk to 2 steps of 1 row."
    root = tmp_path_factory.mktemp("gemma3")
    sets = ["training.batch_size=1", "training.eval_steps=2", "evaluation.num_prompts=2", "evaluation.max_new_tokens=12", "evaluation.batch_size=2"]
    r = subprocess.run([sys.executable, "-m", "finetune_nb", "quickstart", "--model", str(real_model_path("gemma3")), "--max-steps", "2",
                        "--output", str(root), *[a for s in sets for a in ("--set", s)], "-v"], capture_output=True, text=True, timeout=2400)
    assert r.returncode == 0, r.stderr[-4000:]
    return root / "quickstart", r


def test_gemma3_base_quickstarts_with_the_fallback_template_in_every_stage(gemma3):
    from transformers import AutoTokenizer, GenerationConfig
    from finetune_nb.templates import CHATML_EOS_TEMPLATE
    run, r = gemma3
    meta = json.loads((run / "run_metadata.json").read_text())
    assert meta["mode"] == "finetuned" and meta["status"] == "success", meta
    assert meta["model_source"]["model_type"] == "gemma3_text" and meta["model_source"]["quant_type"] == "Q4_K_M"
    train = json.loads((run / "metadata.json").read_text())
    assert train["stop_tokens"] == ["<eos>"] and train["pad_token"] == "kept '<pad>'" and train["data"]["train"]["rows_without_eos"] == 0
    for d in ("adapter", "merged"): assert AutoTokenizer.from_pretrained(run / d).chat_template == CHATML_EOS_TEMPLATE
    assert _ids(GenerationConfig.from_pretrained(run / "merged").eos_token_id) == [1]  # <eos>
    assert json.loads((run / "stages" / "train.json").read_text())["result"]["validation"]["generated_tokens"] > 0
    assert set(json.loads((run / "eval" / "metrics.json").read_text())["systems"]) == {"base", "tuned"}
    assert "using ChatML with <eos> ending each turn" in r.stderr
    ex = json.loads((run / "export_metadata.json").read_text())["gguf"]["f16"]
    assert ex["arch"] == "gemma3" and ex["verification"]["passed"]  # the tuned base model comes back out as a GGUF llama.cpp runs
    assert "tuned (adapter) vs base: eval loss " in r.stdout and "answers ending on their own (EOS) " in r.stdout  # the figures, printed


def test_validate_refuses_an_export_the_architecture_cannot_have(tmp_path, cli):
    "Gemma 3 exports; a GPT-2 folder does not: validate says so before anything runs, naming export.gguf and the architecture."
    from transformers import GPT2Config, GPT2LMHeadModel
    from finetune_nb.tiny import build_tokenizer
    assert cli("validate", _config(tmp_path, "gemma-export", real_model_path("gemma3"), export={"gguf": ["f16"]})).returncode == 0
    tok = build_tokenizer(512)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(tok))).save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    r = cli("validate", _config(tmp_path, "gpt2-export", tmp_path / "gpt2", export={"gguf": ["f16"]}))
    assert r.returncode == 1 and "export.gguf: " in r.stderr and "gpt2" in r.stderr, r.stderr
