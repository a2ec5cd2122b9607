"prepare_data end to end: every format in, canonical JSONL out, every skip accounted for, splits that never leak."
import csv, json
import pytest
from finetune_nb.config import FineTuneConfig
from finetune_nb.core import DataError
from finetune_nb.dataset import prepare_data
from finetune_nb.testing import make_docx, make_pdf
from finetune_nb.tiny import build_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def _corpus(root):
    root.mkdir()
    with open(root / "faq.jsonl", "w") as f:
        for i in range(30): f.write(json.dumps({"instruction": f"Question number {i} about topic {i % 7}?", "output": f"Answer {i}: a distinct reply number {i * 13}."}) + "\n")
    json.dump({"data": [{"conversations": [{"from": "human", "value": f"Say hello in language {i}"}, {"from": "gpt", "value": f"Greeting {i} in language {i}."}]} for i in range(8)]},
              open(root / "chats.json", "w"))
    with open(root / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f); w.writerow(["input", "output"])
        for i in range(6): w.writerow([f"Translate item {i}", f"Item {i} translated"])
    (root / "guide.md").write_text("# Guide\n\n" + " ".join(f"Sentence {i} explains one step of the setup in detail." for i in range(60)))
    make_pdf(root / "manual.pdf", ["Chapter one. The device has a power button on the left side.\nPress it for two seconds.",
                               "Chapter two. The battery lasts ten hours.\nCharge it with the supplied cable."])
    make_docx(root / "notes.docx", ["Release notes for version 2.", "The export is faster.", [["feature", "status"], ["gguf", "done"]]])
    (root / "Cart.java").write_text('/** A shopping cart. */\npublic class Cart {\n  private double tax;\n  /** Returns the total.\n   * @return the total price */\n'
                                    '  public double total() {\n    return 1.0 + tax;\n  }\n}\n')


def _cfg(root, out, **data):
    return FineTuneConfig.validate({"project": {"output_dir": str(out), "name": "t"}, "data": {"input_path": str(root), **data}})


def _rows(p): return [json.loads(l) for l in p.read_text().splitlines()]


def test_every_format_becomes_canonical_examples(tmp_path, tok):
    _corpus(tmp_path / "in")
    res = prepare_data(_cfg(tmp_path / "in", tmp_path / "runs"), tok, progress=False)
    info = res.info
    for fmt in ("alpaca", "sharegpt", "input_output"): assert info["by_format"].get(fmt), info["by_format"]
    sources = set(info["by_source"])
    for name in ("faq.jsonl", "chats.json", "pairs.csv", "guide.md", "manual.pdf", "notes.docx", "Cart.java"):
        assert any(name in s for s in sources), (name, sources)
    rows = _rows(res.train) + _rows(res.validation)
    assert len(rows) == info["counts"]["train"] + info["counts"]["validation"]
    assert all(r["messages"][-1]["role"] == "assistant" and r["messages"][-1]["content"] for r in rows)
    assert info["tokens"]["train"]["count"] == info["counts"]["train"] and info["tokens"]["train"]["mean"] > 5
    assert set(info["input_files"]) >= {"faq.jsonl", "manual.pdf"} and len(info["config_hash"]) == 64
    from datasets import load_dataset
    ds = load_dataset("json", data_files={"train": str(res.train), "validation": str(res.validation)})
    assert ds["train"].num_rows == info["counts"]["train"] and "messages" in ds["train"].column_names
    assert "## Splits" in (res.out_dir / "dataset_card.md").read_text()


def _bad_inputs(root):
    root.mkdir()
    lines = [json.dumps({"instruction": f"Q{i} unique question text {i}?", "output": f"A{i} unique answer {i}"}) for i in range(10)]
    lines.insert(3, '{"instruction": "broken", ')
    lines.insert(6, json.dumps({"instruction": "no answer here"}))
    (root / "data.jsonl").write_text("\n".join(lines) + "\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")


def test_bad_inputs_are_skipped_and_reported(tmp_path, tok):
    _bad_inputs(tmp_path / "in")
    res = prepare_data(_cfg(tmp_path / "in", tmp_path / "runs"), tok, progress=False)
    info = res.info
    assert info["counts"]["train"] + info["counts"]["validation"] == 10
    where = {(s.get("file", "").split("/")[-1], s.get("line")): s["reason"] for s in info["skipped"]}
    assert "not valid JSON" in where[("data.jsonl", 4)]
    assert "output" in where[("data.jsonl", 7)]
    assert any(f == "empty.txt" for f, _ in where) and any(f == "image.png" for f, _ in where)
    assert info["counts"]["skipped"] == len(info["skipped"]) == 4


def test_fail_mode_names_file_and_line(tmp_path, tok):
    _bad_inputs(tmp_path / "in")
    with pytest.raises(DataError, match=r"data.jsonl:4"):
        prepare_data(_cfg(tmp_path / "in", tmp_path / "runs", on_error="fail"), tok, progress=False)


WORDS = ("router printer laptop camera tablet speaker monitor keyboard scanner projector headset charger "
         "thermostat doorbell microwave dishwasher").split()


def test_duplicates_removed_and_accounted(tmp_path, tok):
    root = tmp_path / "in"; root.mkdir()
    rows = [{"instruction": f"How do I reset the {w}?", "output": f"Unplug the {w}, wait {i + 5} seconds, plug it back in and check the {w} light."}
            for i, w in enumerate(WORDS[:12])]
    (root / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    res = prepare_data(_cfg(root, tmp_path / "runs"), tok, progress=False)
    assert res.info["counts"]["train"] + res.info["counts"]["validation"] == 12
    dups = [s for s in res.info["skipped"] if s.get("kind") == "exact_duplicate"]
    assert len(dups) == 5 and all(s["file"].endswith("b.jsonl") and "a.jsonl" in s["duplicate_of"] for s in dups)


def test_variations_never_cross_the_split(tmp_path, tok):
    root = tmp_path / "in"; root.mkdir()
    (root / "q.jsonl").write_text("".join(json.dumps({"instruction": f"Explain how a {a} differs from a {b} in plain words",
                                                          "output": f"A {a} and a {b} differ in purpose; case {i}."}) + "\n"
                                        for i, (a, b) in enumerate((a, b) for a in WORDS for b in WORDS if a < b)))
    cfg = _cfg(root, tmp_path / "runs", split={"validation_fraction": 0.25, "seed": 3},
               augmentation={"enabled": True, "num_instruction_variations": 2})
    res = prepare_data(cfg, tok, progress=False)
    train, val = _rows(res.train), _rows(res.validation)
    assert res.info["counts"]["augmented"] > 0 and len(val) > 0
    assert not any("augmented_from" in r["metadata"] for r in val)
    from finetune_nb.augment import group_key
    assert not {group_key(r) for r in train} & {group_key(r) for r in val}


def test_same_inputs_same_outputs(tmp_path, tok):
    _corpus(tmp_path / "in")
    a = prepare_data(_cfg(tmp_path / "in", tmp_path / "r1"), tok, progress=False)
    b = prepare_data(_cfg(tmp_path / "in", tmp_path / "r2"), tok, progress=False)
    assert a.train.read_bytes() == b.train.read_bytes() and a.validation.read_bytes() == b.validation.read_bytes()


def test_missing_input_is_a_clear_error(tmp_path, tok):
    with pytest.raises(DataError, match="input not found"):
        prepare_data(_cfg(tmp_path / "nope", tmp_path / "runs"), tok, progress=False)


def test_rows_the_template_or_tokenizer_cannot_take_are_dropped_and_reported(tmp_path, tok, monkeypatch):
    "A row the chat template refuses, and a row the tokenizer fails on, are each skipped with file:line and the reason (or fail the run)."
    root = tmp_path / "in"; root.mkdir()
    rows = [{"instruction": f"How do I reset the {w}?", "output": f"Hold the {w} button for {i + 3} seconds."} for i, w in enumerate(WORDS[:8])]
    rows[2]["output"] = "This answer is forbidden by the template."
    rows[5]["output"] = "This answer breaks the tokenizer."
    (root / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tpl = tmp_path / "strict.jinja"
    tpl.write_text("{%- for m in messages -%}{%- if 'forbidden' in m['content'] -%}{{ raise_exception('no forbidden words') }}{%- endif -%}"
                   "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{%- endfor -%}")
    real = type(tok).__call__
    def fragile(self, text, *a, **kw):  # the fault: the tokenizer raises on one conversation (and on any batch holding it)
        if any("breaks the tokenizer" in t for t in ([text] if isinstance(text, str) else text)): raise ValueError("unsupported byte sequence")
        return real(self, text, *a, **kw)
    monkeypatch.setattr(type(tok), "__call__", fragile)
    cfg = lambda **d: FineTuneConfig.validate({"project": {"output_dir": str(tmp_path / "runs"), "name": "t"}, "model": {"chat_template": str(tpl)},
                                               "data": {"input_path": str(root), "augmentation": {"instruction_variations": False}, **d}})
    res = prepare_data(cfg(), tok, progress=False)
    assert res.info["counts"]["train"] + res.info["counts"]["validation"] == 6
    where = {s["line"]: s["reason"] for s in res.info["skipped"]}
    assert "chat template cannot render" in where[3] and "no forbidden words" in where[3]
    assert "tokenizer cannot encode" in where[6] and "unsupported byte sequence" in where[6]
    assert res.info["tokens"]["train"]["count"] + res.info["tokens"]["validation"]["count"] == 6
    with pytest.raises(DataError, match=r"a\.jsonl:3: the chat template cannot render"):
        prepare_data(cfg(on_error="fail"), tok, progress=False)


# ---------------------------------------------------------------- issue 15: nothing usable, one big document, flat memory

def test_nothing_usable_is_an_error_with_the_reasons_and_keeps_the_last_good_data(tmp_path, cli):
    "A 0-row prepare exits 1 naming why, and never replaces the previous train.jsonl with an empty one."
    root = tmp_path / "in"; root.mkdir()
    (root / "qa.jsonl").write_text(json.dumps({"instruction": "How do I reset the router?", "output": "Hold reset for ten seconds."}) + "\n")
    (tmp_path / "c.yaml").write_text("project: {name: c, output_dir: runs}\ndata: {input_path: in}\nmodel: {model_name: claude-haiku-4-5}\n")
    assert cli("prepare-data", "c.yaml", "-q").returncode == 0
    train = tmp_path / "runs" / "c" / "data" / "train.jsonl"
    before = train.read_bytes() + (train.parent / "validation.jsonl").read_bytes()
    (root / "qa.jsonl").write_text('{"instruction": "no answer"}\n{"broken\n')
    (root / "empty.txt").write_bytes(b"")
    r = cli("prepare-data", "c.yaml", "-q")
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "no usable examples (1 file read, 0 rows in, 3 files or rows skipped)" in last, last
    assert "field 'output': missing" in last and "not valid JSON" in last and "empty file" in last
    assert train.read_bytes() + (train.parent / "validation.jsonl").read_bytes() == before
    assert not [p.name for p in train.parent.iterdir() if p.name.startswith(".")]  # no scratch file left behind


def test_one_document_is_split_in_sections_without_leaking_chunks(tmp_path, tok):
    "A single-file corpus: about validation_fraction of the rows held out, in runs of consecutive chunks, none in both splits."
    root = tmp_path / "in"; root.mkdir()
    (root / "manual.md").write_text("\n\n".join(f"## Step {i}\n\nStep {i} of the {WORDS[i % len(WORDS)]} setup: press button {i}, "
                                                f"wait {i % 7 + 2} seconds and check light {i * 3}. " * 6 for i in range(80)))
    res = prepare_data(_cfg(root, tmp_path / "runs", split={"validation_fraction": 0.2, "seed": 1}), tok, progress=False)
    split, c = res.info["split"], res.info["counts"]
    assert split["by"] == "section" and split["sections_per_document"] == 10 and split["documents"] == 1
    assert 0.1 <= c["validation"] / (c["train"] + c["validation"]) <= 0.3
    chunk = lambda rows: [r["metadata"]["chunk_id"] for r in rows]
    assert not set(chunk(_rows(res.train))) & set(chunk(_rows(res.validation)))
    lines = sorted(r["metadata"]["start_line"] for r in _rows(res.validation))
    order = sorted(r["metadata"]["start_line"] for r in _rows(res.train) + _rows(res.validation))
    runs = sum(1 for a, b in zip(lines, lines[1:]) if order.index(b) != order.index(a) + 1) + 1
    assert runs <= 2, runs  # whole sections: one or two runs of consecutive chunks, not rows scattered through the manual
    assert "Validation holds whole sections of consecutive chunks" in (res.out_dir / "dataset_card.md").read_text()


def test_many_documents_are_still_held_out_whole(tmp_path, tok):
    root = tmp_path / "in"; root.mkdir()
    for d in range(20): (root / f"doc{d:02d}.txt").write_text(f"Document {d} explains the {WORDS[d % len(WORDS)]} in its own terms, part {d}.")
    res = prepare_data(_cfg(root, tmp_path / "runs", augmentation={"dedup": "off"}), tok, progress=False)
    assert res.info["split"]["by"] == "group" and res.info["counts"]["validation"] == 2  # two of twenty documents, whole


def test_dedup_memory_does_not_grow_with_rows():
    "What near-dedup remembers lives on disk: Python's peak allocation for 8,000 rows is that of 2,000, within a margin."
    import tracemalloc
    from finetune_nb.augment import Deduplicator
    def peak(n):
        dd = Deduplicator("near"); dd.flush_every = 500  # both sizes well past the in-memory batch
        tracemalloc.start()
        for i in range(n):
            text = f"Row {i}: " + " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] + str((i * 31 + j) % 997) for j in range(25))
            dd.check({"messages": [{"role": "user", "content": text}], "metadata": {"source": "s.jsonl", "line": i + 1}}, i + 1)
        out = tracemalloc.get_traced_memory()[1]; tracemalloc.stop(); dd.close()
        return out
    small, big = peak(2000), peak(8000)
    assert big < small * 1.3 + (1 << 20), (small, big)  # the old in-memory LSH grew by about 2.4 KiB a row: +14 MB here


def test_an_output_folder_that_cannot_be_made_is_a_data_error(tmp_path, tok):
    (tmp_path / "in").mkdir(); (tmp_path / "in" / "a.txt").write_text("Pears ripen after picking.")
    (tmp_path / "runs").write_text("a file where the run folder should go")
    with pytest.raises(DataError, match=r"runs/t/data: cannot create the output folder: Not a directory"):
        prepare_data(_cfg(tmp_path / "in", tmp_path / "runs"), tok, progress=False)
