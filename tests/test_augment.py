"Cleaning and augmentation: normalisation, length filters, exact and near dedup, split groups, seeded variations."
import random
import pytest
from finetune_nb.config import AugmentationConfig, FineTuneConfig
from finetune_nb.core import ConfigError, Skipped
from finetune_nb.templates import to_messages, from_messages
from finetune_nb.augment import (Deduplicator, augment, clean, dedup_key, example_id, group_key, normalize_example,
                                 normalize_text, record_length, variations, lsh_params)

def rec(q, a, line=None, source="qa.jsonl"):
    return to_messages({"input": q, "output": a}, source=source, line=line)

# Questions about different topics, so none is a near duplicate of another.
TOPICS = ["LoRA rank", "QLoRA memory", "gradient checkpointing", "packing", "GGUF quantisation", "Ollama Modelfiles",
          "chat templates", "early stopping", "learning-rate warmup", "tokenizer padding"]
ROWS = [rec(f"What should I know about {t}?", f"{t} matters because it changes how training behaves; see the guide, section {i}.", i + 1)
        for i, t in enumerate(TOPICS)]

@pytest.mark.parametrize("raw,want", [
    ("e\u0301t\u00e9", "\u00e9t\u00e9"),                      # NFD -> NFC
    ("a\r\nb\rc", "a\nb\nc"),                                  # line ends
    ("a\u00a0b\u2009c\u3000d", "a b c d"),                     # exotic spaces
    ("zero\u200bwidth\ufeff soft\u00adhyphen", "zerowidth softhyphen"),
    ("line   \nnext\t", "line\nnext"),                         # trailing whitespace
    ("a\n\n\n\n\nb", "a\n\nb"),                                # blank-line runs
    ("\n\n  padded  \n\n", "padded"),
    ("def f():\n    return  1", "def f():\n    return  1"),    # indentation and inner spaces kept
    ("family: \U0001F468\u200d\U0001F469", "family: \U0001F468\u200d\U0001F469"),  # ZWJ kept
])
def test_normalize_text(raw, want):
    assert normalize_text(raw) == want
    assert normalize_text(want) == want

def test_normalize_example_keeps_metadata():
    ex = rec("  Caf\u00e9?\u00a0", "Yes. ", 3)
    out = normalize_example(ex)
    assert out["messages"][0]["content"] == "Caf\u00e9?" and out["messages"][1]["content"] == "Yes."
    assert out["metadata"] == ex["metadata"] and ex["messages"][1]["content"] == "Yes. "  # the input is not mutated

def test_length_filter_chars():
    rows = [rec("Hi?", "Yo.", 1), rec("What is LoRA?", "Low-rank adapters on frozen weights.", 2), rec("Q" * 50 + "?", "A" * 500, 3)]
    dropped = []
    kept = list(clean(rows, AugmentationConfig(min_length=10, max_length=200, dedup="off"), dropped))
    assert [k["metadata"]["line"] for k in kept] == [2]
    assert [(d.kind, d.line, d.file) for d in dropped] == [("too_short", 1, "qa.jsonl"), ("too_long", 3, "qa.jsonl")]
    assert dropped[0].reason == "too short: 6 chars < min_length 10" and dropped[1].reason == "too long: 551 chars > max_length 200"
    assert all(isinstance(d, Skipped) for d in dropped) and dropped[0].to_dict()["kind"] == "too_short"

def test_length_filter_tokens():
    from finetune_nb.tiny import build_tokenizer
    tok = build_tokenizer()
    ex = rec("What is LoRA?", "Low-rank adapters on frozen weights.", 1)
    n = record_length(ex, "tokens", tok)
    assert n == sum(len(tok.encode(m["content"], add_special_tokens=False)) for m in ex["messages"]) and 0 < n < record_length(ex)
    cfg = AugmentationConfig(length_unit="tokens", max_length=n - 1, dedup="off")
    dropped = []
    assert list(clean([ex], cfg, dropped, tokenizer=tok)) == [] and dropped[0].reason == f"too long: {n} tokens > max_length {n - 1}"
    with pytest.raises(ConfigError, match="data.augmentation.length_unit"): list(clean([ex], cfg))

def test_length_config_validation():
    with pytest.raises(ConfigError, match="data.augmentation.max_length"):
        list(clean([], AugmentationConfig(min_length=100, max_length=10)))
    cfg = FineTuneConfig.validate({"data": {"augmentation": {"min_length": 5, "max_length": 4096, "length_unit": "tokens"}}})
    assert cfg.data.augmentation.max_length == 4096
    with pytest.raises(ConfigError, match="length_unit"): FineTuneConfig.validate({"data": {"augmentation": {"length_unit": "words"}}})

def test_exact_dedup_keeps_first_and_names_it():
    dup = rec("what should I know about  LoRA rank?", "LoRA rank matters because it changes how training behaves; see the guide, section 0.", 11)
    dropped = []
    kept = list(clean(ROWS + [dup], AugmentationConfig(dedup="exact"), dropped))
    assert len(kept) == len(ROWS) and kept == [normalize_example(r) for r in ROWS]
    assert [(d.kind, d.line, d.duplicate_of) for d in dropped] == [("exact_duplicate", 11, "qa.jsonl:1")]
    assert dropped[0].reason == "exact duplicate of qa.jsonl:1"
    assert dedup_key(dup) == dedup_key(ROWS[0]) and dedup_key(ROWS[0]) != dedup_key(ROWS[1])

def test_near_dedup_catches_near_duplicate_keeps_similar():
    base = rec("How do I merge a LoRA adapter into the base model before exporting it to GGUF?",
               "Load the base model, wrap it with PeftModel.from_pretrained, then call merge_and_unload() and save it.", 1)
    near = rec("How do I merge a LoRA adapter into the base model before exporting it to GGUF ?",
               "Load the base model, wrap it with PeftModel.from_pretrained, and then call merge_and_unload() and save it!", 2)
    similar = rec("How do I load a LoRA adapter on top of the base model for inference?",
                  "Load the base model, wrap it with PeftModel.from_pretrained, and generate as usual.", 3)
    dropped = []
    kept = list(clean([base, near, similar], AugmentationConfig(dedup="near", near_dedup_threshold=0.85), dropped))
    assert [k["metadata"]["line"] for k in kept] == [1, 3]
    assert len(dropped) == 1 and dropped[0].kind == "near_duplicate" and dropped[0].line == 2 and dropped[0].duplicate_of == "qa.jsonl:1"
    assert "near duplicate of qa.jsonl:1 (estimated Jaccard" in dropped[0].reason
    kept = list(clean([base, near], AugmentationConfig(dedup="exact")))  # exact mode keeps the near duplicate
    assert len(kept) == 2

@pytest.mark.parametrize("mode", ["exact", "near"])
def test_duplicates_are_found_after_the_index_is_written_to_disk(mode):
    "Past `flush_every` kept records the index goes to SQLite (exact mode used to fail there: 'no such table: sig')."
    words = "pear apple ladder orchard frost bloom prune graft soil root bark branch basket crate cellar ripe firm stem leaf bee".split()
    say = lambda i, n: " ".join(random.Random(i * 1000 + n).choices(words, k=12))  # unrelated texts: no two rows are near duplicates
    rows = [rec(say(i, 1) + "?", say(i, 2) + ".", i) for i in range(1, 11)]
    dd = Deduplicator(mode); dd.flush_every = 3
    assert all(dd.check(r, r["metadata"]["line"]) is None for r in rows)
    assert len(dd._seen) == 1  # flushed after rows 3, 6 and 9: rows 1-9 are only on disk
    again = dd.check(rec(rows[0]["messages"][0]["content"], rows[0]["messages"][1]["content"], 99), 99)
    assert (again.kind, again.duplicate_of) == ("exact_duplicate", "qa.jsonl:1")
    if mode == "near":
        near = dd.check(rec(say(2, 1) + " ?", say(2, 2) + "!", 98), 98)
        assert (near.kind, near.duplicate_of) == ("near_duplicate", "qa.jsonl:2")
    dd.close()

def test_near_dedup_mode_drops_exact_duplicates_and_rows_without_lines():
    a = {"messages": [{"role": "assistant", "content": "A passage about adapters and ranks, long enough to shingle."}],
         "metadata": {"source": "guide.pdf", "page": 2, "chunk_id": "c1"}}
    b = {**a, "metadata": {"source": "guide.pdf", "page": 7, "chunk_id": "c9"}}
    dd = Deduplicator("near")
    assert dd.check(a, 1) is None
    d = dd.check(b, 2)
    assert d.kind == "exact_duplicate" and d.page == 7 and d.duplicate_of == "guide.pdf (page 2) chunk c1"
    plain = {"messages": [{"role": "assistant", "content": "Another text entirely, nothing alike."}]}
    assert dd.check(plain, 3) is None and dd.check(plain, 4).duplicate_of == "<records>:3"

def test_near_dedup_recall_on_many_pairs():
    "Pairs that differ by one character are all caught; unrelated rows are all kept."
    rng = random.Random(0)
    words = "adapter rank alpha dropout model layer token batch epoch loss merge quantise export weight gradient".split()
    base = [" ".join(rng.choice(words) for _ in range(30)) for _ in range(200)]
    rows = [{"messages": [{"role": "assistant", "content": t}], "metadata": {"source": "s", "line": i}} for i, t in enumerate(base)]
    edits = [{"messages": [{"role": "assistant", "content": t[:-1] + "!"}], "metadata": {"source": "s", "line": 1000 + i}} for i, t in enumerate(base)]
    dropped = []
    kept = list(clean(rows + edits, AugmentationConfig(dedup="near", near_dedup_threshold=0.85), dropped))
    assert len(kept) == 200 and len(dropped) == 200 and all(d.line >= 1000 for d in dropped)

def test_lsh_params_reach_recall():
    for t in (0.5, 0.7, 0.85, 0.95):
        b, r = lsh_params(t, 128)
        assert b * r <= 128 and 1 - (1 - t ** r) ** b >= 0.99

def test_dedup_off_keeps_everything():
    assert len(list(clean(ROWS + ROWS, AugmentationConfig(dedup="off")))) == 2 * len(ROWS)

def test_group_keys():
    same_q = rec(ROWS[0]["messages"][0]["content"].upper(), "A different answer.", 99)
    assert group_key(ROWS[0]) == group_key(same_q)  # same prompt, same group
    assert len({group_key(r) for r in ROWS}) == len(ROWS)
    chunk = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
             "metadata": {"source": "docs/guide.pdf", "chunk_id": "ab", "page": 3}}
    assert group_key(chunk) == "doc:docs/guide.pdf"
    assert group_key({**chunk, "metadata": {"group": "custom"}}) == "custom"

CFG = AugmentationConfig(enabled=True, num_instruction_variations=3, use_paraphrase_templates=True)

def test_augment_reproducible_and_seeded():
    one = list(augment(ROWS, CFG, seed=1))
    assert one == list(augment(ROWS, CFG, seed=1))
    assert one != list(augment(ROWS, CFG, seed=2))
    assert [o for o in augment(ROWS[3:4], CFG, seed=1)] == one[3 * 5:4 * 5]  # a row's copies do not depend on the rows around it
    state = random.getstate(); list(augment(ROWS, CFG, seed=1)); assert random.getstate() == state  # never the global RNG

def test_augment_copies_are_tagged_and_grouped():
    out = list(augment(ROWS, CFG, seed=3))
    assert len(out) == len(ROWS) * 5
    for i, r in enumerate(ROWS):
        orig, copies = out[i * 5], out[i * 5 + 1:i * 5 + 5]
        assert orig == r
        assert [c["metadata"]["augmentation"] for c in copies] == ["instruction_variation"] * 3 + ["paraphrase_template"]
        assert {c["metadata"]["augmented_from"] for c in copies} == {example_id(r)}
        assert {group_key(c) for c in copies} == {group_key(r)}
        texts = [c["messages"][0]["content"] for c in copies]
        assert len(set(texts)) == 4 and r["messages"][0]["content"] not in texts
        assert all(r["messages"][0]["content"] in t for t in texts)  # a question is reframed, never altered
        assert all(c["messages"][1] == r["messages"][1] for c in copies)  # the answer is untouched
        assert all(c["metadata"]["source"] == "qa.jsonl" for c in copies)

def test_imperative_instruction_rephrased():
    ex = to_messages({"instruction": "Summarise the passage.", "input": "LoRA freezes the base model.", "output": "It freezes it."})
    texts = [v["messages"][0]["content"] for v in variations(ex, 20, seed=0)]
    assert "Could you summarise the passage?\n\nLoRA freezes the base model." in texts
    assert all(t.endswith("LoRA freezes the base model.") or t.endswith("Thanks in advance!") for t in texts)
    back = [from_messages(v, "alpaca") for v in variations(ex, 20, seed=0)]
    assert sum(b["input"] == "LoRA freezes the base model." for b in back) >= 10  # the alpaca input survives most variations

def test_augment_disabled_or_zero():
    assert list(augment(ROWS, AugmentationConfig(enabled=False, num_instruction_variations=5))) == ROWS
    assert list(augment(ROWS, AugmentationConfig(enabled=True, instruction_variations=False))) == ROWS
    assert variations({"messages": [{"role": "assistant", "content": "Just text."}]}, 3, True) == []  # nothing to rephrase
