"The model-set config: few-shot selection, system prompt, schema, chat messages, Ollama Modelfile."
import json, logging, random
import httpx2
import jsonschema
import pytest
from finetune_nb.config import FineTuneConfig
from finetune_nb.core import ModelSetConfigError
from finetune_nb.fallback import (ModelSet, build_model_set, model_set_schema, ollama_quote, read_candidates,
                                  select_few_shot)
from finetune_nb.tiny import build_tokenizer
from finetune_nb.ollama import parse_modelfile  # a port of Ollama's own parser: what Ollama reads back


def row(q, a, **meta):
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], "metadata": meta}


def config(**fallback):
    return FineTuneConfig.validate({"project": {"name": "t"}, "fallback": fallback})


def clustered_rows(seed=0):
    "Three clusters of near-identical rows (10, 5 and 5): the big one dominates the centroid."
    rng = random.Random(seed)
    clusters = {"a": "reset password account email link sign page", "b": "invoice refund card charge billing month",
                "c": "parcel shipping tracking courier delivery box"}
    rows = []
    for name, n in (("a", 10), ("b", 5), ("c", 5)):
        words = clusters[name].split()
        for i in range(n):
            rng.shuffle(words)
            rows.append(row(" ".join(words[:5]) + f" {i}?", " ".join(words) + ".", id=f"{name}{i}", cluster=name))
    return rows


SUPPORT = [
    row("How do I update the card on my invoice?", "Open Billing > Payment methods and add the new card.", rating="good", topic="billing"),
    row("Why was I charged twice?", "One charge is a pending authorisation; it disappears in 3 days.", rating="bad", topic="billing"),
    row("Where is my parcel?", "Track it under Orders > Track shipment.", rating="good"),
    row("How long does shipping to Canada take?", "Usually 5 to 8 business days.", rating="ok"),
    row("The box arrived damaged.", "Send a photo within 14 days and we ship a replacement.", rating="meh", tags=["returns"]),
    row("How do I reset my password?", "Click Forgot password on the sign-in page."),
]


# --- selection -------------------------------------------------------------------------------------

def test_same_seed_same_choice_whatever_the_row_order():
    rows = clustered_rows() + SUPPORT
    cfg = config(num_examples=5, rating_mapping={"good": 1, "ok": 0.5, "bad": 0})
    first = [c.id for c in select_few_shot(rows, cfg).chosen]
    assert [c.id for c in select_few_shot(rows, cfg).chosen] == first
    shuffled = rows[:]; random.Random(1).shuffle(shuffled)
    assert [c.id for c in select_few_shot(shuffled, cfg).chosen] == first


def test_seed_breaks_exact_ties():
    # every row is one distinct word of the same length: equal scores everywhere, only the seed decides
    rows = [row(w, w) for w in ("alpha", "bravo", "delta", "gamma", "kappa", "omega", "sigma", "theta")]
    picks = {tuple(c.id for c in select_few_shot(rows, config(num_examples=2), seed=s).chosen) for s in range(8)}
    assert len(picks) > 1
    assert select_few_shot(rows, config(num_examples=2, seed=3)).chosen[0].id == select_few_shot(rows, config(num_examples=2), seed=3).chosen[0].id


def test_near_duplicates_are_not_both_chosen():
    sel = select_few_shot(clustered_rows(), config(num_examples=3))
    assert sorted(c.metadata["cluster"] for c in sel.chosen) == ["a", "b", "c"]
    # pure relevance (lambda = 1) takes the three most typical rows, all from the big cluster: the diversity term is what works
    greedy = select_few_shot(clustered_rows(), config(num_examples=3, mmr_lambda=1.0))
    assert [c.metadata["cluster"] for c in greedy.chosen] == ["a", "a", "a"]


def test_every_target_topic_with_rows_is_covered():
    rows = clustered_rows() + SUPPORT
    cfg = config(num_examples=4, target_topics=["billing", "Shipping", "returns", "warranty"])
    sel = select_few_shot(rows, cfg)
    assert set(sel.topics_covered) == {"billing", "Shipping", "returns"}  # tag, text (any case), tag list
    assert sel.topics_missing == {"warranty": "no row is tagged with it or mentions it"}
    [returns_id] = sel.topics_covered["returns"]
    assert next(c for c in sel.chosen if c.id == returns_id).metadata["tags"] == ["returns"]
    # one slot for two coverable topics: the gap is reported with its reason
    tight = select_few_shot(rows, config(num_examples=1, target_topics=["returns", "warranty", "billing"]))
    assert len(tight.topics_covered) == 1 and "did not fit" in next(w for t, w in tight.topics_missing.items() if t != "warranty")


def test_higher_rated_rows_are_preferred_and_unknown_labels_reported():
    subjects = ["invoice pdf", "team members", "api keys", "dark mode", "calendar sync"]
    rows = [row(f"How do I set up {s}?", f"{verdict} Go to Settings > {s.title()} and follow the steps.", rating=verdict)
            for s in subjects for verdict in ("bad", "good")]  # each subject: a bad and a good answer, nearly the same text
    rows += [row("How do I export the audit log?", "Settings > Audit > Export.", rating="so-so"),
             row("How do I export my contacts?", "Contacts > Export.", feedback={"rating": 4})]
    sel = select_few_shot(rows, config(num_examples=4, rating_mapping={"Good": 1.0, "bad": 0.0}))
    assert [c.metadata["rating"] for c in sel.chosen] == ["good"] * 4
    assert len({c.turns[0]["content"] for c in sel.chosen}) == 4  # four subjects, not good answers to one
    assert sel.ratings["unmapped"] == {"so-so": 1} and sel.ratings["rated"] == 10 and sel.ratings["unrated"] == 1
    assert all(q == 1.0 for q in sel.quality)
    nested = select_few_shot(rows, config(rating_field="feedback.rating"))  # dotted paths reach nested fields
    assert nested.ratings["rated"] == 1 and nested.ratings["field"] == "feedback.rating"


def test_corrected_answers_are_preferred_as_examples():
    "Pairs of near-identical rows, equally rated: the one a reviewer corrected is chosen each time, and says why."
    subjects = ["invoice pdf", "team members", "api keys", "dark mode", "calendar sync", "audit log"]
    rows = [row(f"How do I set up {s}?", f"Go to Settings > {s.title()} and follow the steps{end}", rating=5, corrected=fixed, subject=s)
            for s in subjects for end, fixed in ((".", False), (" shown there.", True))]
    sel = select_few_shot(rows, config(num_examples=4))
    assert [c.metadata["corrected"] for c in sel.chosen] == [True] * 4 and len({c.metadata["subject"] for c in sel.chosen}) == 4
    assert all(w.endswith("a reviewer's corrected answer") for w in sel.why)
    plain = select_few_shot([{**r, "metadata": {**r["metadata"], "corrected": False}} for r in rows], config(num_examples=4))
    assert sum(c.answer.endswith("shown there.") for c in plain.chosen) < 4  # without the flag the same wording is not always chosen


def test_token_budget_is_respected_with_a_tokenizer_and_with_the_estimate():
    rows = clustered_rows() + SUPPORT + [row("Tell me everything.", "word " * 400)]
    tok = build_tokenizer()
    for tokenizer in (None, tok):
        sel = select_few_shot(rows, config(num_examples=8, token_budget=120), tokenizer=tokenizer)
        assert 0 < sel.tokens_used <= 120 and len(sel.chosen) < 8
        assert sel.over_budget == 1  # the long row can never fit
    sel = select_few_shot(rows, config(num_examples=2, token_budget=500), tokenizer=tok)
    exact = [sum(len(tok.encode(t["content"], add_special_tokens=False)) + 4 for t in c.turns) for c in sel.chosen]
    assert sel.tokens == exact and sel.token_counter.startswith("tokenizer:")
    est = select_few_shot([row("abcd", "abcdefgh")], config())
    assert est.tokens == [1 + 2 + 2 * 4] and est.token_counter == "chars/4"
    with pytest.raises(ModelSetConfigError, match="token_budget"):
        select_few_shot(rows[-1:], config(token_budget=50))


def test_rows_from_a_jsonl_file_keep_file_and_line(tmp_path):
    p = tmp_path / "train.jsonl"
    lines = [json.dumps(r) for r in SUPPORT[:3]] + ["{not json", json.dumps({"messages": [{"role": "user", "content": "hi"}]})]
    p.write_text("\n".join(lines) + "\n")
    skipped = []
    cands, n = read_candidates(p, skipped)
    assert (len(cands), n) == (3, 4) and [c.line for c in cands] == [1, 2, 3] and cands[0].source == str(p)
    assert [(s.line, s.reason.split(":")[0]) for s in skipped] == [(4, "not valid JSON"), (5, "no assistant answer")]


# --- the model set file ----------------------------------------------------------------------------

def test_build_write_load_round_trip(tmp_path):
    cfg = config(num_examples=3, rating_mapping={"good": 1, "ok": 0.5, "bad": 0}, target_topics=["billing"])
    path, meta = build_model_set(cfg, SUPPORT + [{"messages": []}], "DatasetTooSmallWarning: 7 rows < 50", out_dir=tmp_path)
    assert path == tmp_path / "model_set_config.json"
    data = json.loads(path.read_text())
    jsonschema.validate(data, model_set_schema())
    ms = ModelSet.load(path)
    assert ms.model_dump(mode="json") == data
    ms.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == path.read_text()
    assert data["schema_version"] == 1 and data["base_model"] == "builtin:tiny-llama"
    assert data["selection"]["rating_mapping"] == {"good": 1, "ok": 0.5, "bad": 0} and data["selection"]["target_topics"] == ["billing"]
    assert data["provenance"]["reason"].startswith("DatasetTooSmallWarning") and data["provenance"]["skipped_rows"] == 1
    assert all(len(e["sha256"]) == 64 and e["why"] for e in data["examples"])
    assert meta["mode"] == "model_set" and meta["rows"] == 7 and meta["usable_rows"] == 6
    assert meta["skipped"]["by_reason"] == {"no assistant answer": 1}
    assert [s["id"] for s in meta["selected"]] == [e["id"] for e in data["examples"]]
    assert list(meta["topics"]["covered"]) == ["billing"] and data["examples"][0]["id"] in meta["topics"]["covered"]["billing"]
    assert meta["ratings"]["unmapped"] == {"meh": 1}
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


@pytest.fixture
def saved(tmp_path):
    path, _ = build_model_set(config(num_examples=2), SUPPORT, "test", out_dir=tmp_path)
    return path


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.pop("system_prompt"), "field 'system_prompt': Field required"),
    (lambda d: d["examples"][0]["messages"][1].update(role="system"), "field 'examples.0.messages.1.role'"),
    (lambda d: d["examples"][0]["messages"].pop(), "field 'examples.0.messages'"),
    (lambda d: d.update(schema_version=2), "newer finetune_nb"),
    (lambda d: d.pop("schema_version"), "'schema_version' is missing"),
    (lambda d: d["generation"].update(temperature=-1), "field 'generation.temperature'"),
    (lambda d: d.update(colour="blue"), "field 'colour': Extra inputs are not permitted"),
    (lambda d: d.update(examples=[]), "field 'examples'"),
])
def test_load_names_the_bad_field(saved, edit, message):
    data = json.loads(saved.read_text())
    edit(data)
    saved.write_text(json.dumps(data))
    with pytest.raises(ModelSetConfigError, match="model_set_config.json: ") as e:
        ModelSet.load(saved)
    assert message in str(e.value)


def test_load_reports_bad_json_and_missing_file(saved):
    saved.write_text('{"schema_version": 1,\n  "kind": }')
    with pytest.raises(ModelSetConfigError, match=r"model_set_config.json:2: not valid JSON"):
        ModelSet.load(saved)
    with pytest.raises(ModelSetConfigError, match="file not found"):
        ModelSet.load(saved.parent / "nope.json")


def test_no_usable_examples_is_an_error_logged_and_nothing_written(tmp_path, caplog):
    cfg = config()
    with caplog.at_level(logging.ERROR, logger="finetune_nb"):
        with pytest.raises(ModelSetConfigError, match="no rows were given"):
            build_model_set(cfg, [], "too small", out_dir=tmp_path)
        questions_only = [{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(3)]
        with pytest.raises(ModelSetConfigError, match=r"among 3 rows: 3 × no assistant answer \(e.g. <examples>:1"):
            build_model_set(cfg, questions_only, "too small", out_dir=tmp_path)
        with pytest.raises(ModelSetConfigError, match="empty assistant answer"):
            build_model_set(cfg, [row("q", "   ")], "too small", out_dir=tmp_path)
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 3
    assert not (tmp_path / "model_set_config.json").exists()


def test_a_failing_prompt_writer_is_wrapped_not_swallowed(tmp_path, caplog):
    def writer(facts, turns): raise RuntimeError("LLM unreachable")
    with caplog.at_level(logging.ERROR, logger="finetune_nb"), pytest.raises(ModelSetConfigError, match="RuntimeError: LLM unreachable") as e:
        build_model_set(config(), SUPPORT, "test", out_dir=tmp_path, prompt_writer=writer)
    assert isinstance(e.value.__cause__, RuntimeError) and "LLM unreachable" in caplog.text


def test_prompt_sources_generated_config_and_writer(tmp_path):
    path, _ = build_model_set(config(), SUPPORT, "t", out_dir=tmp_path,
                              prompt_writer=lambda facts, turns: f"Answer in {facts.language}; {len(turns)} examples follow.")
    ms = ModelSet.load(path)
    assert (ms.system_prompt, ms.system_prompt_source) == ("Answer in English; 6 examples follow.", "custom")
    path, _ = build_model_set(config(system_prompt="You are Acme support."), SUPPORT, "t", out_dir=tmp_path)
    assert ModelSet.load(path).system_prompt_source == "config"


@pytest.mark.parametrize("answers,expected", [
    ([json.dumps({"sku": f"A{i}", "qty": i, "note": "x"}) for i in range(5)], 'Reply with a JSON object with the keys "note", "qty" and "sku" only'),
    ([f"Use this:\n```python\nprint({i})\n```" for i in range(5)], "Reply with code in a fenced ```python block"),
    ([f"1. Open settings\n2. Pick item {i}\n3. Save" for i in range(5)], "Reply with a numbered list of steps."),
    (["Das ist nicht möglich, Sie können es aber mit der Seite ändern und es ist auch einfach."] * 5, "Answer in German."),
])
def test_system_prompt_describes_the_task(tmp_path, answers, expected):
    rows = [{"messages": [{"role": "system", "content": "You are the Acme order bot."}, {"role": "user", "content": f"Question {i}?"},
                          {"role": "assistant", "content": a}]} for i, a in enumerate(answers)]
    path, _ = build_model_set(config(num_examples=3), rows, "t", out_dir=tmp_path)
    prompt = ModelSet.load(path).system_prompt
    assert prompt.startswith("You are the Acme order bot.\n") and expected in prompt


# --- using it --------------------------------------------------------------------------------------

def test_messages_render_with_a_chat_template(saved):
    ms = ModelSet.load(saved)
    msgs = ms.messages("Where is my refund?")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"] == ms.system_prompt and msgs[1]["content"] == ms.examples[0].messages[0].content
    tok = build_tokenizer()
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n" + ms.system_prompt + "<|im_end|>")
    assert text.endswith("<|im_start|>user\nWhere is my refund?<|im_end|>\n<|im_start|>assistant\n")
    assert text.index(ms.examples[0].messages[1].content) < text.index(ms.examples[1].messages[0].content)
    merged = ms.messages("Hi", system_role=False)
    assert merged[0] == {"role": "user", "content": ms.system_prompt + "\n\n" + ms.examples[0].messages[0].content}
    assert ms.generation_kwargs() == {"max_new_tokens": ms.generation.max_new_tokens, "do_sample": True, "temperature": 0.2, "top_p": 0.9}


def test_a_local_model_answers_with_the_model_set(saved, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from finetune_nb.tiny import make_tiny_model
    path = make_tiny_model(tmp_path / "m")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    ms = ModelSet.load(saved)
    enc = tok.apply_chat_template(ms.messages("Where is my refund?"), add_generation_prompt=True, return_tensors="pt", return_dict=True)
    torch.manual_seed(0)
    out = model.generate(**enc, **{**ms.generation_kwargs(), "max_new_tokens": 5, "min_new_tokens": 5})
    assert out.shape[1] == enc["input_ids"].shape[1] + 5
    assert tok.decode(enc["input_ids"][0]).count("<|im_start|>assistant") == len(ms.examples) + 1


def test_anthropic_request_through_the_real_sdk(saved):
    import anthropic
    seen = []
    def handler(request):
        seen.append(json.loads(request.content))
        return httpx2.Response(200, json={"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                                         "content": [{"type": "text", "text": "Under Billing > Refunds."}], "stop_reason": "end_turn",
                                         "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}})
    client = anthropic.Anthropic(api_key="test-key", base_url="http://anthropic.test",
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    ms = ModelSet.load(saved)
    reply = client.messages.create(**ms.anthropic_kwargs("Where is my refund?", model="claude-haiku-4-5"))
    assert reply.content[0].text == "Under Billing > Refunds."
    body = seen[0]
    assert body["system"] == ms.system_prompt and body["model"] == "claude-haiku-4-5"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"] * len(ms.examples) + ["user"]
    assert body["max_tokens"] == ms.generation.max_new_tokens


def test_modelfile_reads_back_in_ollama(tmp_path, caplog):
    tricky = [row("Line one\nline two with \"quotes\" and a trailing space ", '"Quoted answer"'),
              row("Write a function with a docstring", 'def f():\n    """Return one."""\n    return 1\n'),
              row('  indented "question"', '{"a": "b\\n", "c": ["d"]}'),
              row("Tabs\tand\r\nCRLF", "empty line next\n\nend")]
    cfg = config(num_examples=4, system_prompt='You are "Acme" support.\nBe brief.\n\n  Keep the indentation.')
    path, _ = build_model_set(cfg, tricky, "t", out_dir=tmp_path)
    ms = ModelSet.load(path)
    with caplog.at_level(logging.WARNING, logger="finetune_nb"):
        out = ms.write_modelfile(tmp_path / "Modelfile", base="llama3.2")
    text = out.read_bytes().decode()  # keep the \r\n
    assert text.splitlines()[1] == "FROM llama3.2" and "SYSTEM \"\"\"You are \"Acme\" support.\nBe brief." in text
    cmds = parse_modelfile(text)
    assert cmds[:4] == [("model", "llama3.2"), ("temperature", "0.2"), ("top_p", "0.9"), ("num_predict", str(ms.generation.max_new_tokens))]
    assert cmds[4] == ("system", ms.system_prompt)
    expected = [f"{t.role}: {t.content}" for e in ms.examples for t in e.messages]
    docstring = 'def f():\n    """Return one."""\n    return 1\n'
    assert [a for n, a in cmds[5:]] == [x.replace(docstring, docstring.replace('"""', "'''")) for x in expected]
    assert any(docstring in x for x in expected) and "Ollama cannot escape" in caplog.text


def test_the_parser_port_is_faithful_on_ollama_quoting():
    # the cases Ollama's own parser tests pin down: a bare value, a quoted one, triple quotes spanning lines
    assert parse_modelfile('FROM foo\nSYSTEM You are a bot\n') == [("model", "foo"), ("system", "You are a bot")]
    assert parse_modelfile('FROM foo\nSYSTEM "You are a bot"\n') == [("model", "foo"), ("system", "You are a bot")]
    assert parse_modelfile('FROM foo\nMESSAGE user """a\n"b"\nc"""\n') == [("model", "foo"), ("message", 'user: a\n"b"\nc')]
    # and why ollama_quote rewrites """: written raw, a """ before a line break ends the value early
    assert parse_modelfile('FROM foo\nSYSTEM """x """\nMESSAGE user hi"""\n') == [("model", "foo"), ("system", "x "), ("message", 'user: hi"""')]
    assert ollama_quote('a """b"""\nc') == '"""a \'\'\'b\'\'\'\nc"""'


def test_modelfile_needs_an_ollama_base_for_builtin_models(saved):
    with pytest.raises(ModelSetConfigError, match="pass base="):
        ModelSet.load(saved).modelfile()
