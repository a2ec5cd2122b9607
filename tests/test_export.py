"Export end to end: merge equivalence, GGUF round trips per architecture, tokenizers, Modelfile and deploy."
import json, os, stat, sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gguf
from finetune_nb.config import FineTuneConfig
from finetune_nb.core import ExportError
from finetune_nb.export import (check_llama_cpp, compare_logits, GGUF_ARCHS, K_QUANTS, KQUANT_PIP, NUMPY_TYPES, export_gguf,
                                merge_adapter, sample_inputs, strip_generation_markers, verify_gguf, write_gguf)
from finetune_nb.testing import make_test_adapter
from finetune_nb.tiny import TINY_ARCHS, make_tiny_model
from finetune_nb.ollama import (check_conversations, deploy_ollama, render_go_template, template_parts, to_go_template,
                                translate_template, write_modelfile)
from finetune_nb.templates import ALPACA_TEMPLATE, CHATML_TEMPLATE, has_generation_markers


def _config(tmp, base, **export):
    return FineTuneConfig.validate({"project": {"name": "exp", "output_dir": str(tmp/"runs")},
                                    "model": {"model_name": str(base)}, "export": export})


def _meta(cfg): return json.loads((cfg.run_dir/"export_metadata.json").read_text())


def _fields(path):
    r = gguf.GGUFReader(path)
    return r, {k: r.fields[k].contents() for k in r.fields}


@pytest.fixture(scope="module")
def merged_run(tmp_path_factory):
    "A tiny Llama, a random non-zero LoRA adapter on it, and the merged model."
    tmp = tmp_path_factory.mktemp("merge")
    base = make_tiny_model(tmp/"base", "llama")
    cfg = _config(tmp, base, gguf=["f16", "q8_0"], ollama={"system_prompt": "You answer questions about LoRA."})
    make_test_adapter(base, cfg.run_dir/"adapter", seed=3)
    merge_adapter(cfg)
    return cfg


# -- merge ---------------------------------------------------------------------------------------

def test_merge_matches_adapter_model_and_changes_base(merged_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    cfg = merged_run
    meta = _meta(cfg)["merge"]
    assert meta["max_abs_logit_diff"] <= 1e-4 and meta["dtype"] == "float32"
    base = AutoModelForCausalLM.from_pretrained(cfg.model.model_name, dtype=torch.float32)
    merged = AutoModelForCausalLM.from_pretrained(cfg.run_dir/"merged", dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(cfg.run_dir/"merged")
    x = torch.tensor([sample_inputs(tok)[1]])
    with torch.no_grad():
        base_logits = base(x).logits
        adapted = PeftModel.from_pretrained(base, cfg.run_dir/"adapter")(x).logits
        merged_logits = merged(x).logits
    assert (merged_logits - adapted).abs().max().item() <= 1e-4
    assert (merged_logits - base_logits).abs().max().item() > 1e-3  # the adapter really changed the model
    assert tok.chat_template == CHATML_TEMPLATE  # tokenizer and training template travel with the merged model
    assert not any("lora" in k for k in merged.state_dict())


def test_merge_without_adapter_is_a_clear_error(tmp_path):
    cfg = _config(tmp_path, "builtin:tiny-llama")
    with pytest.raises(ExportError, match="adapter_config.json is missing"):
        merge_adapter(cfg)


# -- GGUF ----------------------------------------------------------------------------------------

def test_export_f16_and_q8_0_verified_and_recorded(merged_run):
    cfg = merged_run
    paths = export_gguf(cfg)
    assert [p.name for p in paths] == ["model-f16.gguf", "model-q8_0.gguf"]
    g = _meta(cfg)["gguf"]
    f16, q8 = g["f16"]["verification"], g["q8_0"]["verification"]
    assert f16["passed"] and f16["tokenizer_identical"] and f16["template_identical"]
    assert 0 < f16["max_abs_logit_diff"] < 2e-2
    assert 0 < q8["max_abs_logit_diff"] < 0.5 and q8["passed"]  # quantised: deviation recorded
    assert g["q8_0"]["tensor_types"]["Q8_0"] > 0 and g["q8_0"]["bytes"] < g["f16"]["bytes"]
    r, f = _fields(paths[0])
    assert f["general.architecture"] == "llama" and f["tokenizer.ggml.model"] == "gpt2"
    assert not has_generation_markers(f["tokenizer.chat_template"]) and "{% endif %}" in f["tokenizer.chat_template"]
    tok_list = f["tokenizer.ggml.tokens"]
    assert tok_list[f["tokenizer.ggml.eos_token_id"]] == "<|im_end|>" and tok_list[f["tokenizer.ggml.padding_token_id"]] == "<|pad|>"
    assert f["tokenizer.ggml.token_type"][tok_list.index("<|im_start|>")] == gguf.TokenType.CONTROL
    assert f["tokenizer.ggml.add_bos_token"] is False
    for t in r.tensors:  # norms stay F32, matrices are F16
        assert t.tensor_type == (gguf.GGMLQuantizationType.F32 if len(t.shape) == 1 else gguf.GGMLQuantizationType.F16), t.name


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_gguf_round_trip_each_architecture(tmp_path, arch, llama_cpp):
    "Each architecture, written as f16 and q8_0, read back by llama.cpp (and transformers where it can) and verified."
    base = make_tiny_model(tmp_path/arch, arch, seed=2)
    cfg = _config(tmp_path, base)
    paths = export_gguf(cfg, model_dir=base, quantizations=["f16", "q8_0"])
    v = _meta(cfg)["gguf"]
    f16, q8 = v["f16"]["verification"], v["q8_0"]["verification"]
    lc = f16["llama_cpp"]
    assert f16["passed"] and lc["passed"] and lc["tokenizer_identical"] and lc["chat_prompts_identical"] and lc["end_of_turn_is_eog"]
    assert lc["end_of_turn"] == "<|im_end|>" and lc["greedy_steps"] >= 4 * 8
    assert 0 < lc["max_abs_logit_diff"] < 2e-2 * lc["max_abs_logit"]
    assert len(lc["greedy_mismatches"]) <= 1  # a random tiny model has the odd near-tie (margin ~1e-3) no 16-bit file keeps
    assert q8["passed"] and q8["llama_cpp"]["max_abs_logit_diff"] > lc["max_abs_logit_diff"]  # quantised: drift recorded, not bounded
    _, f = _fields(paths[0])
    assert f["general.architecture"] == GGUF_ARCHS[json.loads((base/"config.json").read_text())["model_type"]]
    if arch == "smollm3": assert f16["transformers"].startswith("skipped")
    else: assert f16["tokenizer_identical"] and f16["max_abs_logit_diff"] < 2e-2 * f16["max_abs_logit"]


def test_llama3_rope_scaling_written_as_llama_cpp_factors(tmp_path, llama_cpp):
    "Llama 3.1+'s frequency-dependent rope scaling becomes the rope_freqs tensor; llama.cpp then matches the scaled model, not the plain one."
    from transformers import AutoModelForCausalLM, AutoTokenizer
    base = make_tiny_model(tmp_path/"l3", "llama", seed=2)
    plain = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    hf = json.loads((base/"config.json").read_text())
    hf["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    (base/"config.json").write_text(json.dumps(hf))
    scaled = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    write_gguf(base, tmp_path/"l3.gguf", "f32")
    assert "rope_freqs.weight" in {t.name for t in gguf.GGUFReader(tmp_path/"l3.gguf").tensors}
    lc = check_llama_cpp(tmp_path/"l3.gguf", base, "f32")
    assert lc["passed"] and lc["max_abs_logit_diff"] < 1e-3 * lc["max_abs_logit"]
    gap = compare_logits(scaled, plain, sample_inputs(AutoTokenizer.from_pretrained(base)))
    assert gap["max_abs_logit_diff"] > 100 * lc["max_abs_logit_diff"]  # the scaling is large enough for the check to see


def test_phi3_in_the_project_name_still_loads_in_llama_cpp(tmp_path, llama_cpp):
    "llama.cpp applies Phi-3's token quirks to any general.name containing phi3, and fails on a vocabulary without </s>."
    base = make_tiny_model(tmp_path/"b", "llama")
    info = write_gguf(base, tmp_path/"p.gguf", "f16", name="phi3-helpdesk")
    _, f = _fields(tmp_path/"p.gguf")
    assert f["general.name"] == "phi 3-helpdesk" and info["arch"] == "llama"
    assert check_llama_cpp(tmp_path/"p.gguf", base, "f16")["passed"]


def test_compare_logits_records_each_greedy_mismatch_where_it_happened(tmp_path):
    "Two different models: every step where the second would not pick the first's greedy token, with its prompt and margin."
    from transformers import AutoModelForCausalLM, AutoTokenizer
    a = AutoModelForCausalLM.from_pretrained(make_tiny_model(tmp_path/"a"), dtype=torch.float32).eval()
    b = AutoModelForCausalLM.from_pretrained(make_tiny_model(tmp_path/"b", seed=1), dtype=torch.float32).eval()
    inputs = sample_inputs(AutoTokenizer.from_pretrained(tmp_path/"a"))
    same, other = compare_logits(a, a, inputs), compare_logits(a, b, inputs)
    assert same["greedy_identical"] and not same["greedy_mismatches"] and same["max_abs_logit_diff"] == 0
    assert not other["greedy_identical"] and 0 < len(other["greedy_mismatches"]) <= other["greedy_steps"] == same["greedy_steps"]
    for m in other["greedy_mismatches"]:
        assert len(inputs[m["prompt"]]) - 1 <= m["position"] and m["margin"] <= 2 * m["deviation"]  # only where the bound allows
    assert {m["prompt"] for m in other["greedy_mismatches"]} == set(range(len(inputs)))  # a different model parts on every prompt


def test_qwen2_biases_written_f32(tmp_path):
    base = make_tiny_model(tmp_path/"q", "qwen2")
    write_gguf(base, tmp_path/"q.gguf", "q4_0")
    r = gguf.GGUFReader(tmp_path/"q.gguf")
    types = {t.name: t.tensor_type for t in r.tensors}
    assert types["blk.0.attn_q.bias"] == gguf.GGMLQuantizationType.F32
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.Q4_0


@pytest.mark.parametrize("quant", [q for q in NUMPY_TYPES if q not in ("f16", "q8_0")])
def test_every_numpy_type_writes_and_verifies(merged_run, tmp_path, quant):
    path = tmp_path/f"m-{quant}.gguf"
    info = write_gguf(merged_run.run_dir/"merged", path, quant)
    v = verify_gguf(path, merged_run.run_dir/"merged", quant)
    assert v["passed"] and np.isfinite(v["max_abs_logit_diff"])
    expected = {"f32": "F32", "bf16": "BF16"}.get(quant, quant.upper())
    assert info["tensor_types"][expected] > 0
    if quant == "f32": assert v["max_abs_logit_diff"] < 1e-4


def test_vocab_size_check(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    base = make_tiny_model(tmp_path/"b", "llama")
    tok = AutoTokenizer.from_pretrained(base)
    rows = AutoModelForCausalLM.from_pretrained(base).get_input_embeddings().weight.shape[0]
    tok.add_tokens(["<extra_tool_token>"], special_tokens=True)  # a token added without resizing the embeddings
    tok.save_pretrained(base)
    with pytest.raises(ExportError, match=rf"embedding matrix has {rows} rows but the tokenizer has {rows + 1} tokens"):
        write_gguf(base, tmp_path/"x.gguf", "f16")
    assert not (tmp_path/"x.gguf").exists() and not list(tmp_path.glob(".x.gguf*"))


def test_padded_vocabulary_is_padded_like_llama_cpp(tmp_path):
    from transformers import AutoModelForCausalLM
    base = make_tiny_model(tmp_path/"b", "qwen2")
    model = AutoModelForCausalLM.from_pretrained(base)
    rows = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(rows + 8); model.save_pretrained(base)
    info = write_gguf(base, tmp_path/"p.gguf", "f16")
    assert info["tokenizer"]["tokens"] == rows + 8 and info["tokenizer"]["padded"] == 8
    assert verify_gguf(tmp_path/"p.gguf", base, "f16")["passed"]


def _sentencepiece_style_model(path, legacy=True):
    """A tiny Llama whose tokenizer.json is built as Llama 2's and Mistral 7B's are: BPE with byte fallback, a '▁' prepended to each
    text piece (legacy), or only to the start of the input (`legacy=False`: Metaspace with prepend_scheme 'first')."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from importlib.resources import files
    text = files("finetune_nb").joinpath("data/tokenizer_corpus.txt").read_text(encoding="utf-8")
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tk.train_from_iterator(text.splitlines(), trainers.BpeTrainer(vocab_size=400, show_progress=False))
    trained = json.loads(tk.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for piece in trained["vocab"]:
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    spm = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if legacy: spm.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    else: spm.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    spm.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    spm.add_special_tokens(["<unk>", "<s>", "</s>"])
    spm.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])  # Llama 2 adds BOS
    tok = PreTrainedTokenizerFast(tokenizer_object=spm, bos_token="<s>", eos_token="</s>", unk_token="<unk>", chat_template=ALPACA_TEMPLATE)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path, tok


def test_sentencepiece_style_tokenizer_round_trip(tmp_path, llama_cpp):
    base, tok = _sentencepiece_style_model(tmp_path/"spm")
    info = write_gguf(base, tmp_path/"spm.gguf", "f16")
    assert info["tokenizer"]["model"] == "llama" and info["tokenizer"]["pre"] == "default"
    v = verify_gguf(tmp_path/"spm.gguf", base, "f16")  # tokenization, template and greedy tokens all checked
    lc = v["llama_cpp"]
    assert lc["tokenizer_identical"] and lc["chat_prompts_identical"] and v["passed"]
    _, f = _fields(tmp_path/"spm.gguf")
    types, toks = f["tokenizer.ggml.token_type"], f["tokenizer.ggml.tokens"]
    assert types[toks.index("<0x41>")] == gguf.TokenType.BYTE and types[tok.bos_token_id] == gguf.TokenType.CONTROL
    assert f["tokenizer.ggml.add_bos_token"] is True and "output.weight" in {t.name for t in gguf.GGUFReader(tmp_path/"spm.gguf").tensors}
    scores = f["tokenizer.ggml.scores"]
    assert scores[300] > scores[350]  # merge priority survives as scores for llama.cpp


def test_llama_cpp_catches_a_tokenizer_it_cannot_reproduce(tmp_path, llama_cpp):
    "llama.cpp puts a '▁' after every special token; a tokenizer that prepends one only at the start of the input tokenizes differently there."
    base, tok = _sentencepiece_style_model(tmp_path/"first", legacy=False)
    write_gguf(base, tmp_path/"first.gguf", "f16")
    with pytest.raises(ExportError, match=r"llama.cpp renders 1 of 4 sample conversations to different prompt ids"):
        verify_gguf(tmp_path/"first.gguf", base, "f16")  # the third sample has text right after </s>


def test_verification_failure_is_an_error(merged_run, tmp_path):
    other = make_tiny_model(tmp_path/"other", "llama", seed=7)
    write_gguf(other, tmp_path/"o.gguf", "f16")
    with pytest.raises(ExportError, match="failed verification"):
        verify_gguf(tmp_path/"o.gguf", merged_run.run_dir/"merged", "f16")


@pytest.mark.parametrize("quant", K_QUANTS)
def test_kquant_without_llama_cpp_names_the_extra(merged_run, quant, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if the extra were not installed, wherever the test runs
    before = sorted(p.name for p in merged_run.run_dir.iterdir())
    with pytest.raises(ExportError) as e:
        export_gguf(merged_run, quantizations=["f16", quant])
    assert "gguf-kquants" in str(e.value) and KQUANT_PIP in str(e.value)
    assert sorted(p.name for p in merged_run.run_dir.iterdir()) == before  # failed before writing anything


def test_unknown_architecture(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel
    from finetune_nb.tiny import build_tokenizer
    tok = build_tokenizer()
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2)).save_pretrained(tmp_path/"g")
    tok.save_pretrained(tmp_path/"g")
    with pytest.raises(ExportError, match="model_type 'gpt2' cannot be exported"):
        write_gguf(tmp_path/"g", tmp_path/"g.gguf", "f16")


# -- Ollama --------------------------------------------------------------------------------------

def _trl_template(name):
    import trl
    return (Path(trl.__file__).parent/"chat_templates"/f"{name}.jinja").read_text()


@pytest.mark.parametrize("template", ["chatml", "alpaca", "llama3", "llama3_1", "qwen2_5", "qwen2_5_training"])
def test_go_template_renders_20_conversations_like_jinja(template):
    from finetune_nb.tiny import build_tokenizer
    tok = build_tokenizer()
    jinja = {"chatml": CHATML_TEMPLATE, "alpaca": ALPACA_TEMPLATE}.get(template) or _trl_template(template)
    go, parts, check = translate_template(jinja, tok)
    assert check == dict(conversations=20, identical=True, contents_trimmed=template.startswith("llama3"))
    convs = check_conversations(20)
    assert sum(c[0]["role"] == "system" for c in convs) >= 5 and sum(c[-1]["role"] == "assistant" for c in convs) >= 5
    assert len({len(c) for c in convs}) >= 4
    for msgs in convs:  # independently of translate_template's own check
        if parts.trims: msgs = [{**m, "content": m["content"].strip()} for m in msgs]
        want = tok.apply_chat_template(msgs, chat_template=jinja, tokenize=False, add_generation_prompt=msgs[-1]["role"] != "assistant")
        assert render_go_template(go, msgs) == want


def test_system_prompt_from_modelfile_is_the_first_message():
    from finetune_nb.tiny import build_tokenizer
    tok = build_tokenizer()
    go = to_go_template(template_parts(CHATML_TEMPLATE, tok))
    msgs = [{"role": "user", "content": "Hi"}]
    with_sys = [{"role": "system", "content": "Be brief."}] + msgs
    assert render_go_template(go, msgs, system="Be brief.") == tok.apply_chat_template(with_sys, tokenize=False, add_generation_prompt=True)


def test_unsupported_template_structure_is_an_error():
    from finetune_nb.tiny import build_tokenizer
    folded = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {% if loop.first and messages|length > 1 %}"
              "{{ messages|length }} {% endif %}{{ m['content'] }} [/INST]{% elif m['role'] == 'assistant' %}{{ m['content'] }}</s>"
              "{% endif %}{% endfor %}")
    with pytest.raises(ExportError, match="does not (render each message|reproduce the chat template)"):
        translate_template(folded, build_tokenizer())


def test_modelfile_for_fine_tuned_model(merged_run):
    cfg = merged_run
    if not (cfg.run_dir/"model-f16.gguf").exists(): export_gguf(cfg, quantizations=["f16"])
    cfg.export.ollama.parameters = {"temperature": 0.2, "num_predict": 128}
    path = write_modelfile(cfg)
    text = path.read_text()
    assert text.startswith("FROM ./model-f16.gguf\n")
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER temperature 0.2" in text and "PARAMETER num_predict 128" in text
    assert "PARAMETER num_ctx 2048" in text and 'SYSTEM """You answer questions about LoRA."""' in text
    go = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]
    want = strip_generation_markers(CHATML_TEMPLATE)
    from jinja2 import Environment
    assert render_go_template(go, msgs) == Environment().from_string(want).render(messages=msgs, add_generation_prompt=True)
    meta = _meta(cfg)["ollama"]
    assert meta["template_check"]["identical"] and meta["stops"] == ["<|im_end|>"]


def test_modelfile_needs_the_gguf(tmp_path):
    cfg = _config(tmp_path, "builtin:tiny-llama")
    with pytest.raises(ExportError, match="GGUF file .* not found"):
        write_modelfile(cfg)


def _fake_ollama(bin_dir, rc=0):
    "A real `ollama` executable that records its arguments and working directory."
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir/"ollama"
    exe.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                   f"open({str(bin_dir/'calls.jsonl')!r}, 'a').write(json.dumps({{'argv': sys.argv[1:], 'cwd': os.getcwd()}}) + '\\n')\n"
                   f"print('success'); sys.exit({rc})\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return bin_dir/"calls.jsonl"


def test_deploy_runs_ollama_create_when_on_path(merged_run, tmp_path, monkeypatch):
    cfg = merged_run
    if not (cfg.run_dir/"Modelfile").exists(): test_modelfile_for_fine_tuned_model(cfg)
    calls = _fake_ollama(tmp_path/"bin")
    monkeypatch.setenv("PATH", str(tmp_path/"bin") + os.pathsep + os.environ["PATH"])
    r = deploy_ollama(cfg, name="my-model")
    assert r["ran"] and r["output"] == "success"
    call = json.loads(calls.read_text())
    assert call["argv"] == ["create", "my-model", "-f", str((cfg.run_dir/"Modelfile").resolve())]
    assert Path(call["cwd"]) == cfg.run_dir.resolve()


def test_deploy_failure_and_missing_binary(merged_run, tmp_path, monkeypatch, capsys):
    cfg = merged_run
    if not (cfg.run_dir/"Modelfile").exists(): test_modelfile_for_fine_tuned_model(cfg)
    _fake_ollama(tmp_path/"bad", rc=3)
    monkeypatch.setenv("PATH", str(tmp_path/"bad"))
    with pytest.raises(ExportError, match="exit code 3"):
        deploy_ollama(cfg)
    monkeypatch.setenv("PATH", str(tmp_path/"empty"))
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")  # nothing listens on the discard port
    r = deploy_ollama(cfg)
    out = capsys.readouterr().out
    assert not r["ran"] and f"ollama create exp -f {(cfg.run_dir/'Modelfile').resolve()}" in out
    assert "no Ollama server answers at http://127.0.0.1:9" in out
