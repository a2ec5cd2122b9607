"Evaluation and chat on a run with a briefly trained tiny adapter."
import html.parser, io, json, math, os, subprocess, sys, warnings
import pytest

torch = pytest.importorskip("torch")
from finetune_nb.config import FineTuneConfig, JudgeConfig
from finetune_nb.core import FinetuneNBError, write_jsonl
from finetune_nb.evaluate import chat, chat_main, evaluate, load_chat_models
from finetune_nb.tiny import make_tiny_model
from finetune_nb.templates import render

QA = [("What colour is the sky?", "Blue."), ("Capital of France?", "Paris."), ("Two plus two?", "Four."), ("Who wrote Hamlet?", "Shakespeare.")]
# Markup and table syntax that the reports must escape, in the reference and in the tuned model's answer.
MARKUP = ("Show me markup", "<script>alert('x')</script> | *bold* & done")


def _row(q, a, system=None):
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": msgs, "metadata": {"source": "qa.jsonl"}}


def _train_adapter(base_dir, rows, out_dir, steps=100):
    "Memorise `rows` with LoRA plus a trainable output layer (a random tiny model's logits are too small for LoRA alone)."
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok, model = AutoTokenizer.from_pretrained(base_dir), AutoModelForCausalLM.from_pretrained(base_dir)
    rs = [render(r["messages"], tok, tok.chat_template) for r in rows]
    width = max(len(r.input_ids) for r in rs)
    ids = torch.tensor([r.input_ids + [tok.pad_token_id] * (width - len(r.input_ids)) for r in rs])
    labels = torch.tensor([[t if m else -100 for t, m in zip(r.input_ids, r.assistant_mask)] + [-100] * (width - len(r.input_ids)) for r in rs])
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0,
                                                 modules_to_save=["lm_head"], task_type="CAUSAL_LM"))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        history = []
        for step in range(1, steps + 1):
            loss = model(input_ids=ids, attention_mask=(ids != tok.pad_token_id).long(), labels=labels).loss
            loss.backward(); opt.step(); opt.zero_grad()
            if step % 10 == 0: history.append({"loss": round(loss.item(), 4), "learning_rate": 0.01, "step": step})
            if step % 25 == 0: history.append({"eval_loss": round(loss.item() * 1.1, 4), "step": step})
        model.save_pretrained(out_dir); tok.save_pretrained(out_dir)
    return model, history + [{"train_loss": 1.0, "train_runtime": 3.0, "step": steps}]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "A run folder as the earlier stages leave it: validation.jsonl, adapter/, trainer_state.json; and its config."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 0.1 M-parameter model is fastest on one thread
    root = tmp_path_factory.mktemp("evalrun")
    base = make_tiny_model(root / "base")
    cfg = FineTuneConfig.validate({"project": {"name": "demo", "output_dir": str(root / "runs")}, "model": {"model_name": str(base)},
                                   "training": {"device": "cpu", "batch_size": 2},
                                   "evaluation": {"num_prompts": 5, "max_new_tokens": 32}})
    rows = [_row(q, a) for q, a in QA + [MARKUP]]
    write_jsonl(cfg.run_dir / "data" / "validation.jsonl", rows)
    peft_model, history = _train_adapter(base, rows, cfg.run_dir / "adapter")
    (cfg.run_dir / "checkpoints" / "checkpoint-100").mkdir(parents=True)
    (cfg.run_dir / "checkpoints" / "checkpoint-100" / "trainer_state.json").write_text(json.dumps({"global_step": 100, "log_history": history}))
    yield dict(cfg=cfg, root=root, base=base, history=history, peft_model=peft_model)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def result(run):
    return evaluate(run["cfg"])


class _Tags(html.parser.HTMLParser):
    "Every tag in a page, and the text of every <pre> block."
    def __init__(self):
        super().__init__(); self.tags, self.pre, self._in = [], [], False
    def handle_starttag(self, tag, attrs): self.tags.append(tag); self._in = tag == "pre" or self._in
    def handle_endtag(self, tag):
        if tag == "pre": self._in = False
    def handle_data(self, data):
        if self._in: self.pre.append(data)


def test_tuned_beats_base_on_memorised_rows(result):
    base, tuned = result.systems["base"], result.systems["tuned"]
    assert tuned["exact_match"] >= 0.8 and base["exact_match"] == 0.0
    assert tuned["eval_loss"] < base["eval_loss"] and tuned["perplexity"] == pytest.approx(math.exp(tuned["eval_loss"]))
    assert tuned["rouge_l"] > base["rouge_l"] and tuned["token_f1"] > base["token_f1"]
    answers = [s["answers"]["tuned"]["text"] for s in result.metrics["samples"][:4]]
    assert answers == [a for _, a in QA]  # memorised
    assert [s["answers"]["tuned"]["stopped_on_eos"] for s in result.metrics["samples"][:4]] == [True] * 4
    assert "fine-tuning helped" in result.metrics["verdict"]


def test_metrics_json_holds_real_numbers(run, result):
    m = json.loads((run["cfg"].run_dir / "eval" / "metrics.json").read_text())
    assert set(m["systems"]) == {"base", "tuned"} and m["num_validation_rows"] == 5 and len(m["samples"]) == 5
    for s in m["systems"].values():
        for k in ("eval_loss", "perplexity", "exact_match", "token_f1", "rouge_l", "mean_output_tokens", "eos_rate"):
            assert isinstance(s[k], float) and math.isfinite(s[k]), (k, s[k])
        assert s["eval_tokens"] > 0
    assert m["systems"]["tuned"]["eval_loss"] == result.systems["tuned"]["eval_loss"]
    assert all(0 < a["tokens"] <= 32 for s in m["samples"] for a in s["answers"].values() if a["text"])
    assert all(a["tokens"] == 32 for s in m["samples"] for a in s["answers"].values() if not a["stopped_on_eos"])


def test_markdown_report_sections_numbers_and_escaping(run, result):
    md = (run["cfg"].run_dir / "eval" / "report.md").read_text()
    for section in ("# Evaluation of demo", "## Summary", "## Loss curves", "## Answers", "### Prompt 5", "![Train and eval loss](loss.png)"):
        assert section in md
    tuned = result.systems["tuned"]
    assert f"{tuned['eval_loss']:.4f}" in md and f"{tuned['exact_match']:.1%}" in md
    row = next(l for l in md.splitlines() if l.startswith("| &lt;script&gt;"))  # the markup reference, one table row
    assert "<script>" not in md and row.count(" | ") == 2  # its own '|' is escaped, so the row keeps three cells
    assert "\\|" in row and "\\*bold\\*" in row


def test_html_report_side_by_side_and_escaped(run, result):
    page = (run["cfg"].run_dir / "eval" / "report.html").read_text()
    p = _Tags(); p.feed(page)
    assert "script" not in p.tags  # the answer's <script> is text, not a tag
    assert MARKUP[1] in p.pre  # and reads back exactly as written
    assert p.tags.count("h3") == 5 and "img" in p.tags and "table" in p.tags
    assert f"{result.systems['tuned']['eval_loss']:.4f}" in page
    assert "data:image/png;base64," in page  # self-contained: the plot travels with the page
    for label in ("reference", "tuned (adapter)", "base ("):
        assert label in page


def test_loss_png_has_both_curves(run, result):
    from matplotlib.image import imread
    png = run["cfg"].run_dir / "eval" / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(png)[..., :3]
    def near(rgb): return int((abs(img - torch.tensor(rgb).numpy() / 255).max(-1) < 0.08).sum())
    assert near((31, 119, 180)) > 100 and near((255, 127, 14)) > 30  # matplotlib's C0 (train) and C1 (eval) lines
    curves = result.metrics["loss_curves"]
    assert curves["train"] == [[e["step"], e["loss"]] for e in run["history"] if "loss" in e]
    assert curves["eval"] == [[e["step"], e["eval_loss"]] for e in run["history"] if "eval_loss" in e]


class MiniSet:
    "The duck type of finetune_nb.fallback.ModelSet: system prompt + few-shot turns + the user turn."
    def messages(self, user_input):
        return [{"role": "system", "content": "Answer with one word."},
                {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."},
                {"role": "user", "content": user_input}]


def _judged(run, tmp_path):
    cfg = run["cfg"].model_copy(deep=True)
    cfg.evaluation.judge = JudgeConfig(max_concurrency=4)
    return evaluate(cfg, out_dir=tmp_path / "eval")


def test_judge_scores_each_answer_and_compares_base_with_tuned_in_both_orders(run, result, fake, tmp_path):
    res = _judged(run, tmp_path)
    j, samples = res.metrics["judge"], res.metrics["samples"]
    assert j["status"] == "ok" and j["judge"] == "anthropic:claude-sonnet-4-5" and j["rubric"].startswith("qa:")
    right = lambda s, k: s["answers"][k]["text"] == s["reference"]
    for s in samples:  # the scripted judge: 5 for an answer equal to the reference, 2 otherwise; the exact answer wins
        assert [s["answers"][k]["judge"]["score"] for k in ("base", "tuned")] == [5 if right(s, k) else 2 for k in ("base", "tuned")]
        want = "tuned" if right(s, "tuned") and not right(s, "base") else "base" if right(s, "base") and not right(s, "tuned") else "tie"
        p = s["pairwise"]["tuned"]
        assert p["winner"] == want and [(o["a"], o["b"]) for o in p["orders"]] == [("base", "tuned"), ("tuned", "base")]
    n_right = sum(right(s, "tuned") for s in samples)
    assert n_right >= 4 and j["pairwise"]["tuned"]["wins"] == n_right and j["pairwise"]["tuned"]["agreement"] == 1.0
    assert res.systems["tuned"]["judge_score"] == pytest.approx((5 * n_right + 2 * (5 - n_right)) / 5)
    assert res.systems["tuned"]["judge_win_rate"] > 0.5 and res.systems["base"]["judge_score"] == 2.0
    assert fake.message_requests == 2 * 5 + 2 * 5 and j["usage"]["requests"] == 20 and j["cost_usd"] > 0
    assert "tuned (adapter) vs base, judged by anthropic:claude-sonnet-4-5" in res.metrics["verdict"]
    md, page = (res.out_dir / "report.md").read_text(), (res.out_dir / "report.html").read_text()
    assert "judge score" in md and "judge win rate" in md and "judge 5/5: matches the reference" in md
    assert "Judge, tuned (adapter) vs base: tuned (adapter) better in both orders" in md
    assert page.count("<div class='judge'>judge ") == 10 and "judge win rate" in page
    rows = [json.loads(l) for l in (res.out_dir / "judge_pairwise.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and rows[0]["answers"].keys() == {"base", "tuned"} and rows[0]["prompt"] == samples[0]["prompt"]
    assert fake.keys_seen and not any(fake_key in p.read_text(errors="ignore") for p in res.out_dir.iterdir() for fake_key in fake.keys_seen)


def test_without_a_key_the_judge_is_skipped_and_the_rest_unchanged(run, result, tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    res = _judged(run, tmp_path)
    assert res.metrics["judge"] == {"status": "skipped", "reason": res.metrics["judge"]["reason"]}
    assert "The judge was skipped: ANTHROPIC_API_KEY is not set" in res.metrics["verdict"]
    for k in ("base", "tuned"):
        assert {m: v for m, v in res.systems[k].items() if m != "seconds"} == {m: v for m, v in result.systems[k].items() if m != "seconds"}
    md = (res.out_dir / "report.md").read_text()
    assert "The judge was skipped" in md and "judge score" not in md and not (res.out_dir / "judge_pairwise.jsonl").exists()


def test_model_set_evaluates(run):
    cfg = run["cfg"].model_copy(deep=True)
    cfg.project.name = "fallback-run"  # a run with no adapter: only the model-set is compared with the base
    write_jsonl(cfg.run_dir / "data" / "validation.jsonl", [_row(q, a, system="ignored") for q, a in QA])
    res = evaluate(cfg, model_set=MiniSet())
    assert list(res.systems) == ["base", "model_set"]
    base, fs = res.systems["base"], res.systems["model_set"]
    assert math.isfinite(fs["eval_loss"]) and fs["eval_loss"] != base["eval_loss"]
    assert fs["eval_tokens"] == base["eval_tokens"]  # the same answer tokens scored, after a longer prompt
    for s in res.metrics["samples"]:
        assert s["answers"]["model_set"]["prompt_tokens"] > s["answers"]["base"]["prompt_tokens"] + 10
    assert "model-set (few-shot) vs base" in res.metrics["verdict"]
    assert "model-set (few-shot)" in (cfg.run_dir / "eval" / "report.html").read_text()
    assert not (cfg.run_dir / "eval" / "loss.png").exists()  # no training log in this run
    assert "No training log" in (cfg.run_dir / "eval" / "report.md").read_text()


def test_merged_folder_matches_adapter(run, result, tmp_path):
    from transformers import AutoTokenizer
    merged = run["peft_model"].merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    AutoTokenizer.from_pretrained(run["cfg"].run_dir / "adapter").save_pretrained(tmp_path / "merged")  # export ships the tokenizer too
    cfg = run["cfg"].model_copy(deep=True)
    cfg.evaluation.compare_base = False
    res = evaluate(cfg, tuned=tmp_path / "merged", out_dir=tmp_path / "eval")
    assert list(res.systems) == ["tuned"] and res.systems["tuned"]["label"] == "tuned (merged)"
    assert "base model was not evaluated" in res.metrics["verdict"]
    assert res.systems["tuned"]["exact_match"] == result.systems["tuned"]["exact_match"]
    assert res.systems["tuned"]["eval_loss"] == pytest.approx(result.systems["tuned"]["eval_loss"], rel=1e-3)


def test_missing_validation_file_says_what_to_do(run, tmp_path):
    with pytest.raises(FinetuneNBError, match="no held-out data") as e:
        evaluate(run["cfg"], data_path=tmp_path / "nope.jsonl")
    assert "prepare-data" in e.value.hint


class _Spy:
    "Calls the real `generate` and keeps what it was given."
    def __init__(self, model):
        self.inputs, self._generate = [], model.generate
        model.generate = self
    def __call__(self, **kw):
        self.inputs.append(kw["input_ids"][0].tolist()); return self._generate(**kw)


def test_interactive_chat_keeps_history_and_resets(run):
    [tuned] = load_chat_models(run["cfg"])
    spy, out = _Spy(tuned.model), io.StringIO()
    chat([tuned], stdin=io.StringIO("Capital of France?\nTwo plus two?\n/reset\nWho wrote Hamlet?\n/exit\nnever read\n"), stdout=out)
    sent = [tuned.tokenizer.decode(ids) for ids in spy.inputs]
    assert len(sent) == 3
    assert "Capital of France?" in sent[1] and "Paris." in sent[1] and "Two plus two?" in sent[1]  # the first exchange came along
    assert "France" not in sent[2] and "Two plus two" not in sent[2]  # /reset forgot it
    text = out.getvalue()
    assert "Paris." in text and "Four." in text and "Shakespeare." in text and "(conversation cleared)" in text
    assert "never read" not in text


def test_chat_from_stdin_in_a_subprocess(run, tmp_path):
    cfg_path = tmp_path / "c.yaml"
    run["cfg"].to_yaml(cfg_path)
    code = "import sys; from finetune_nb.evaluate import chat_main; sys.exit(chat_main(sys.argv[1], interactive=True))"
    r = subprocess.run([sys.executable, "-c", code, str(cfg_path)], input="Capital of France?\nTwo plus two?\n", capture_output=True,
                       text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("you> ") == 3 and "Paris." in r.stdout and "Four." in r.stdout


def test_compare_prompt_shows_base_and_tuned(run):
    out = io.StringIO()
    assert chat_main(run["cfg"], prompt="Capital of France?", compare=True, stdout=out) == 0
    text = out.getvalue()
    base_label = f"[base ({run['base']})]"
    assert base_label in text and "[tuned (adapter)]" in text
    base_answer = text.split(base_label)[1].split("[tuned (adapter)]")[0].strip()
    tuned_answer = text.split("[tuned (adapter)]")[1].strip()
    assert tuned_answer == "Paris."
    # the base's turn ran with the adapter switched off: it matches the plain base model
    from finetune_nb.evaluate import ChatModel
    from finetune_nb.models import load_model
    model, tok = load_model(run["cfg"])
    plain = ChatModel("plain", model, tok, tok.chat_template).reply([{"role": "user", "content": "Capital of France?"}], 32)
    assert base_answer == plain and base_answer != tuned_answer


def test_chat_with_adapter_folder_alone(run):
    out = io.StringIO()
    chat_main(model=run["cfg"].run_dir / "adapter", prompt="Two plus two?", stdout=out)
    assert out.getvalue().strip() == "Four."


def test_chat_with_model_set(run):
    [fs] = load_chat_models(run["cfg"], MiniSet())
    spy = _Spy(fs.model)
    chat([fs], prompt="Who wrote Hamlet?", stdout=io.StringIO(), stream=False)
    sent = fs.tokenizer.decode(spy.inputs[0])
    assert "Answer with one word." in sent and "Paris." in sent and sent.rstrip().endswith("assistant")


def test_gguf_needs_llama_cpp(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(FinetuneNBError, match="llama-cpp-python") as e:
        load_chat_models(target=tmp_path / "model.gguf")
    assert "pip install llama-cpp-python" in e.value.hint


def test_chat_main_needs_exactly_one_mode(run):
    for kw in (dict(), dict(prompt="x", interactive=True)):
        with pytest.raises(FinetuneNBError, match="-p"):
            chat_main(run["cfg"], **kw)
