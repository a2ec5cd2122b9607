"Ingestion: every input format, every kind of bad input, Java extraction, splitters and direct mode."
import json, logging, os, tracemalloc
from pathlib import Path

import pytest
from finetune_nb.config import FineTuneConfig
from finetune_nb.core import DataError, FinetuneNBError, read_jsonl
from finetune_nb.testing import make_docx, make_pdf
from finetune_nb.ingest import (Problems, chunk_id, detect_kind, extract_java, ingest, iter_csv, iter_json, iter_jsonl,
                                java_examples, load_docx, load_pdf, load_text, review_notes, walk_inputs, write_chunks)

# ---------------------------------------------------------------- fixtures: real files made on the spot

# the report every DOCX test reads: a heading, a paragraph, a table, a paragraph
REPORT = dict(title="Quarterly report", blocks=["Revenue grew in every region.",
                                                [["Region", "Revenue"], ["North", "120"], ["South", "95"]],
                                                "The table above lists revenue by region."])

JAVA = '''package shop;

import java.util.ArrayList;
import java.util.List;

/**
 * A shopping cart that keeps line items and computes totals.
 */
public class Cart {
    /** Items in the order they were added. */
    private final List<Item> items = new ArrayList<>();
    private double discount;

    /**
     * Adds an item to the cart.
     * @param item the item to add; must not be null
     * @param quantity how many units, at least 1
     * @throws IllegalArgumentException if quantity is below 1
     */
    public void add(Item item, int quantity) {
        if (quantity < 1) {
            throw new IllegalArgumentException("quantity must be >= 1, got " + quantity + " }");
        }
        for (int i = 0; i < quantity; i++) { items.add(item); }
    }

    /**
     * The total price after discount.
     * @return the total in euros
     */
    public double total() {
        double sum = 0;
        for (Item it : items) { sum += it.price(); }
        return sum * (1 - discount);
    }

    public void applyCode(String code, String user, String channel, long ts, int attempt, boolean dryRun) {
        try {
            if (code.startsWith("X")) {
                if (user != null) {
                    if (channel.equals("web")) {
                        if (!dryRun) { discount = 0.1; }
                    }
                }
            }
        } catch (Exception e) {
        }
        System.out.println("applied " + code); // TODO: audit log
    }

    /** An item with a price. */
    public static class Item {
        private final double price;
        public Item(double price) { this.price = price; }
        /** @return the unit price */
        public double price() { return price; }
    }
}
'''

def cfg_for(root, **data)->FineTuneConfig:
    return FineTuneConfig.validate({"data": {"input_path": str(root), **data}})

# ---------------------------------------------------------------- walking and detection

def test_walk_is_sorted_filtered_and_reports_unknown_types(tmp_path):
    for n in ("z/b.txt", "a.md", "z/a.csv", "img.png", "notes.bak", "z/skip.txt"):
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True); (tmp_path / n).write_text("x\n")
    sk = []
    files = walk_inputs(tmp_path, exclude=["z/skip.*"], skipped=sk)
    assert [f.source for f in files] == ["a.md", "z/a.csv", "z/b.txt"]
    assert sorted(s.file for s in sk) == ["img.png", "notes.bak"] and "unknown file type '.png'" in sk[0].reason
    assert [f.source for f in walk_inputs(tmp_path, include=["z/**"])] == ["z/a.csv", "z/b.txt", "z/skip.txt"]
    with pytest.raises(DataError, match="does not exist"): walk_inputs(tmp_path / "nope")

def test_auto_detection_looks_at_content(tmp_path):
    (tmp_path / "rows.txt").write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n')
    (tmp_path / "arr.json").write_text(' \n[{"a": 1}]'); (tmp_path / "lines.json").write_text('{"a": 1}\n{"a": 2}\n')
    (tmp_path / "one.json").write_text('{\n "a": 1\n}\n')
    assert [detect_kind(tmp_path / n) for n in ("rows.txt", "arr.json", "lines.json", "one.json")] == ["jsonl", "json", "jsonl", "json"]
    rows = list(ingest(cfg_for(tmp_path), progress=False).rows())
    assert sorted(str(r) for r in rows) == ["arr.json:2", "lines.json:1", "lines.json:2", "one.json:1", "rows.txt:1", "rows.txt:2"]

# ---------------------------------------------------------------- structured rows

def test_json_records_key_and_line_numbers(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('{"meta": {"v": 1},\n "records": [\n  {"instruction": "x"},\n  {"instruction": "y",\n   "output": "z"}\n ]\n}')
    rows = list(iter_json(p, "d.json"))
    assert [(r.line, r.data) for r in rows] == [(3, {"instruction": "x"}), (4, {"instruction": "y", "output": "z"})]
    assert {r.format for r in rows} == {"json"}

def test_large_json_array_streams_in_bounded_memory(tmp_path):
    p = tmp_path / "big.json"
    with open(p, "w") as f:
        f.write("[\n")
        for i in range(60_000): f.write(("," if i else "") + json.dumps({"instruction": f"q{i}", "output": "a" * 150}) + "\n")
        f.write("]\n")
    assert p.stat().st_size > 10_000_000
    tracemalloc.start()
    n = last = 0
    for r in iter_json(p, "big.json"): n += 1; last = r.line
    peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
    assert (n, last) == (60_000, 60_001)
    assert peak < 8_000_000, f"peak {peak/1e6:.1f} MB for a {p.stat().st_size/1e6:.0f} MB file"

def test_jsonl_malformed_line_skip_and_fail(tmp_path, caplog):
    p = tmp_path / "d.jsonl"; p.write_text('{"a": 1}\n{"a": 2,}\n{"a": 3}\n')
    sk = []
    with caplog.at_level(logging.WARNING, logger="finetune_nb"):
        assert [r.line for r in iter_jsonl(p, "d.jsonl", Problems("skip", sk))] == [1, 3]
    assert sk[0].file == "d.jsonl" and sk[0].line == 2 and "not valid JSON" in sk[0].reason
    logged = [r.getMessage() for r in caplog.records if "not valid JSON" in r.getMessage()]
    assert len(logged) == 1 and "d.jsonl:2" in logged[0]  # reported once, not once per layer
    with pytest.raises(DataError, match=r"^d\.jsonl:2: not valid JSON.*fix or delete") as e:
        list(ingest(cfg_for(tmp_path, on_error="fail"), progress=False).rows())
    assert (e.value.file, e.value.line) == ("d.jsonl", 2)

def test_csv_rows_have_header_keys_lines_and_legacy_encoding(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes('question,answer\n"Qu’est-ce?","Un café, s’il vous plaît"\nmulti,"two\nlines"\nlast,€5\n'.encode("cp1252"))
    rows = list(iter_csv(p, "d.csv"))
    assert [(r.line, r.data["question"]) for r in rows] == [(2, "Qu’est-ce?"), (3, "multi"), (5, "last")]
    assert rows[0].data["answer"] == "Un café, s’il vous plaît" and rows[2].data["answer"] == "€5"

# ---------------------------------------------------------------- text encodings

@pytest.mark.parametrize("codec", ["cp1252", "utf-16", "utf-16-le", "utf-8-sig"])
def test_text_encodings_decode_correctly(tmp_path, codec):
    text = "Größe: 5 €. “Smart quotes” and naïve café déjà vu.\nSecond line — with a dash.\n" * 3
    p = tmp_path / "t.txt"; p.write_bytes(text.encode(codec))
    docs = list(load_text(p, "t.txt"))
    assert "".join(d.page_content for d in docs) == text and docs[0].metadata["start_line"] == 1

def test_undecodable_text_fails_loudly_with_byte_offset(tmp_path):
    p = tmp_path / "bad.txt"; p.write_bytes(b"good line\n" + bytes([0x81, 0x8d, 0x8f, 0x90, 0x9d]) * 4 + b"\x00\x01")
    with pytest.raises(DataError, match=r"bad\.txt: cannot decode.*at byte 10"): list(load_text(p, "bad.txt"))
    sk = []; assert list(load_text(p, "bad.txt", Problems("skip", sk))) == [] and "byte 10" in sk[0].reason
    p2 = tmp_path / "late.txt"; p2.write_bytes(b"a" * 100 + b"\xff\n")  # forced codec, error late in the file
    with pytest.raises(DataError, match="at byte 100"): list(load_text(p2, "late.txt", encoding="utf-8"))

def test_zero_byte_file_is_reported_or_fails(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b""); (tmp_path / "empty.jsonl").write_bytes(b""); (tmp_path / "ok.txt").write_text("hello\n")
    ing = ingest(cfg_for(tmp_path), progress=False)
    assert [c["text"] for c in ing.chunks()] == ["hello"] and list(ing.rows()) == []
    assert sorted((s.file, s.reason.split(";")[0]) for s in ing.skipped) == [("empty.jsonl", "empty file (0 bytes)"), ("empty.txt", "empty file (0 bytes)")]
    assert ing.stats.files_skipped == 2 and ing.stats.files_read == 1
    with pytest.raises(DataError, match=r"empty\.txt: empty file"):
        list(ingest(cfg_for(tmp_path, on_error="fail"), progress=False).chunks())

def test_large_text_file_is_streamed(tmp_path):
    p = tmp_path / "big.txt"
    para = "This paragraph is about streaming large files without reading them whole. " * 8 + "\n\n"
    with open(p, "w") as f:
        for _ in range(25_000): f.write(para)
    assert p.stat().st_size > 14_000_000
    ing = ingest(cfg_for(p), progress=False)
    tracemalloc.start()
    n = 0
    for c in ing.chunks(): n += 1
    peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
    assert n >= 25_000 and ing.stats.documents > 10
    assert peak < 10_000_000, f"peak {peak/1e6:.1f} MB"

# ---------------------------------------------------------------- PDF

def test_pdf_pages_and_image_only_page(tmp_path):
    p = make_pdf(tmp_path / "r.pdf", ["Page one talks about apples.", None, "Page three talks about pears."])
    sk = []
    for backend in ("pypdfium2", "pypdf"):
        sk.clear()
        docs = list(load_pdf(p, "r.pdf", Problems("fail", sk), backend=backend))
        assert [d.metadata["page"] for d in docs] == [1, 3]
        assert "apples" in docs[0].page_content and "pears" in docs[1].page_content
        assert len(sk) == 1 and sk[0].page == 2 and "no text layer" in sk[0].reason and "OCR" in sk[0].reason

def test_pdf_all_pages_scanned_is_an_error(tmp_path):
    p = make_pdf(tmp_path / "scan.pdf", [None, None])
    with pytest.raises(DataError, match=r"scan\.pdf: no text layer .* on any page.*OCR"): list(load_pdf(p, "scan.pdf"))

def test_encrypted_pdf_needs_password_from_env(tmp_path, monkeypatch):
    p = make_pdf(tmp_path / "secret.pdf", ["Confidential numbers."], encrypt="s3cret")
    monkeypatch.delenv("TEST_PDF_PW", raising=False)
    with pytest.raises(DataError, match=r"secret\.pdf: encrypted PDF.*password_env"):
        list(load_pdf(p, "secret.pdf", password_env="TEST_PDF_PW"))
    monkeypatch.setenv("TEST_PDF_PW", "wrong")
    with pytest.raises(DataError, match=r"TEST_PDF_PW does not open it"): list(load_pdf(p, "secret.pdf", password_env="TEST_PDF_PW"))
    monkeypatch.setenv("TEST_PDF_PW", "s3cret")
    docs = list(load_pdf(p, "secret.pdf", password_env="TEST_PDF_PW"))
    assert [d.metadata["page"] for d in docs] == [1] and "Confidential" in docs[0].page_content
    ing = ingest(cfg_for(tmp_path, pdf={"password_env": "TEST_PDF_PW"}), progress=False)
    assert "s3cret" not in json.dumps([c for c in ing.chunks()])

def test_truncated_and_corrupt_pdf(tmp_path):
    good = make_pdf(tmp_path / "good.pdf", ["Some text here."] * 3).read_bytes()
    (tmp_path / "cut.pdf").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(2000) + b"\n%%EOF\n")
    (tmp_path / "fake.pdf").write_text("not a pdf at all")
    with pytest.raises(DataError, match=r"cut\.pdf: truncated PDF.*again"): list(load_pdf(tmp_path / "cut.pdf", "cut.pdf"))
    with pytest.raises(DataError, match=r"junk\.pdf: corrupt PDF"): list(load_pdf(tmp_path / "junk.pdf", "junk.pdf"))
    with pytest.raises(DataError, match=r"fake\.pdf: not a PDF"): list(load_pdf(tmp_path / "fake.pdf", "fake.pdf"))
    ing = ingest(cfg_for(tmp_path), progress=False)
    chunks = list(ing.chunks())
    assert {c["metadata"]["source"] for c in chunks} == {"good.pdf"} and [c["metadata"]["page"] for c in chunks] == [1, 2, 3]
    assert sorted(s.file for s in ing.skipped) == ["cut.pdf", "fake.pdf", "junk.pdf"]
    assert ing.stats.pages == 3

# ---------------------------------------------------------------- DOCX

def test_docx_paragraphs_and_tables_in_order(tmp_path):
    p = make_docx(tmp_path / "r.docx", **REPORT)
    [doc] = list(load_docx(p, "r.docx"))
    assert doc.page_content.splitlines() == ["Quarterly report", "Revenue grew in every region.", "Region | Revenue",
                                             "North | 120", "South | 95", "", "The table above lists revenue by region."]
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"broken\.docx: not a readable DOCX.*re-save"): list(load_docx(tmp_path / "broken.docx", "broken.docx"))

# ---------------------------------------------------------------- code

def test_java_extractor_on_a_real_class():
    classes = extract_java(JAVA, "shop/Cart.java")
    assert [c.name for c in classes] == ["Cart", "Item"]
    cart = classes[0]
    assert cart.javadoc == "A shopping cart that keeps line items and computes totals."
    assert [(f.names, f.type, f.javadoc) for f in cart.fields] == [(["items"], "List<Item>", "Items in the order they were added."), (["discount"], "double", None)]
    add, total, apply = cart.methods
    assert add.signature == "public void add(Item item, int quantity)" and add.params == ["item", "quantity"]
    assert add.code.startswith("public void add(") and add.code.rstrip().endswith("}") and '" }"' in add.code
    assert (add.start_line, add.end_line) == (20, 25) and total.returns == "double"
    assert JAVA.splitlines()[apply.end_line - 1].strip() == "}" and "System.out" in apply.code

def test_code_strategies_produce_canonical_examples():
    classes = extract_java(JAVA, "shop/Cart.java"); counts = {}
    ex = list(java_examples(classes, "shop/Cart.java", counts=counts))
    for e in ex:
        assert [m["role"] for m in e["messages"]] == ["user", "assistant"] and all(m["content"] for m in e["messages"])
        assert e["metadata"]["source"] == "shop/Cart.java" and e["metadata"]["language"] == "java"
    by = {(e["metadata"]["method"], e["metadata"]["strategy"]): e["messages"] for e in ex}
    expl = by[("add", "code_explanation")][1]["content"]
    assert "must not be null" in expl and "`quantity`: how many units" in expl and "IllegalArgumentException" in expl
    gen = by[("total", "code_generation")]
    assert "public double total()" in gen[0]["content"] and gen[1]["content"].startswith("```java\npublic double total()")
    review = by[("applyCode", "code_review")][1]["content"]
    for finding in ("undocumented", "6 parameters", "nest", "empty catch", "Catching Exception", "logger", "TODO"):
        assert finding in review, finding
    assert by[("total", "code_review")][1]["content"].startswith("No issues found")
    assert ("applyCode", "code_explanation") not in by and counts["undocumented"] == 2  # no Javadoc, nothing invented
    notes = review_notes(classes[0].methods[1], long_method_lines=3)
    assert notes == ["The method is 5 lines long (over 3); split it into smaller methods."]

def test_code_files_chunk_by_language_and_bad_java_is_reported(tmp_path):
    (tmp_path / "Cart.java").write_text(JAVA)
    (tmp_path / "Broken.java").write_text("public record Point(int x, int y) { }\n")
    (tmp_path / "util.py").write_text("def a():\n    return 1\n\n\nclass B:\n    def c(self):\n        return 2\n" * 20)
    (tmp_path / "main.go").write_text("package main\n")
    ing = ingest(cfg_for(tmp_path, langchain={"chunk_size": 200, "chunk_overlap": 0}), progress=False)
    chunks = list(ing.chunks())
    assert {c["metadata"]["source"] for c in chunks} == {"Broken.java", "Cart.java", "util.py"}
    py = [c for c in chunks if c["metadata"]["source"] == "util.py"]
    assert all(c["metadata"]["language"] == "python" and len(c["text"]) <= 200 for c in py)
    assert all(c["text"].startswith(("def ", "class ")) for c in py)  # cut at definitions, not mid-function
    ex = list(ing.code_examples())
    assert {e["metadata"]["class_name"] for e in ex} == {"Cart", "Item"}
    assert any(s.file == "Broken.java" and "Java parser failed" in s.reason for s in ing.skipped)
    assert any(s.file == "main.go" and "data.code.languages" in s.reason for s in ing.skipped)

# ---------------------------------------------------------------- splitters

TEXT = "\n\n".join(f"Section {i}.\n" + " ".join(f"word{i}_{j}" for j in range(40)) for i in range(30))

@pytest.mark.parametrize("splitter,size,overlap", [("recursive", 200, 40), ("character", 600, 120)])
def test_splitters_sizes_overlap_and_provenance(tmp_path, splitter, size, overlap):
    (tmp_path / "doc.txt").write_text(TEXT)
    cfg = cfg_for(tmp_path, langchain={"splitter": splitter, "chunk_size": size, "chunk_overlap": overlap})
    chunks = list(ingest(cfg, progress=False).chunks())
    lines = TEXT.splitlines()
    assert len(chunks) > 5 and all(len(c["text"]) <= size for c in chunks)
    for c in chunks:
        m = c["metadata"]
        first, last = c["text"].splitlines()[0], c["text"].splitlines()[-1]
        assert first in lines[m["start_line"] - 1] and last in lines[m["end_line"] - 1]
        assert m["end_line"] - m["start_line"] == c["text"].count("\n")
        assert c["chunk_id"] == chunk_id("doc.txt", m["chunk_index"], c["text"]) and m["doc_sha256"]
    if splitter == "recursive":
        inner = [(a, b) for a, b in zip(chunks, chunks[1:]) if a["text"].startswith("word") and b["text"].startswith("word")]
        assert len(inner) > 10 and all(a["text"][-15:] in b["text"] for a, b in inner)  # neighbours in a paragraph overlap

def test_token_splitter_counts_model_tokens(tmp_path):
    from finetune_nb.tiny import build_tokenizer
    tok = build_tokenizer()
    (tmp_path / "doc.md").write_text("# Title\n\n" + TEXT)
    with pytest.raises(FinetuneNBError, match="tokenizer"): ingest(cfg_for(tmp_path, langchain={"splitter": "token"}))
    chunks = list(ingest(cfg_for(tmp_path, langchain={"splitter": "token", "chunk_size": 64, "chunk_overlap": 8}), tok, progress=False).chunks())
    sizes = [len(tok.tokenize(c["text"])) for c in chunks]
    assert max(sizes) <= 64 and max(sizes) > 32

def test_chunk_ids_are_stable_and_pool_matches_serial(tmp_path):
    for i in range(6): (tmp_path / f"d{i}.txt").write_text(TEXT.replace("word", f"w{i}"))
    for i in range(4): make_pdf(tmp_path / f"a{i}.pdf", [f"A PDF page about pears, number {i}.\nAnd plums."])
    make_docx(tmp_path / "b.docx", **REPORT)
    runs = []
    for workers in (1, 0, 2, 2):  # serial; auto (PDF/DOCX in the pool, text in this process); every file in the pool; again
        cfg = cfg_for(tmp_path, num_workers=workers, langchain={"chunk_size": 300, "chunk_overlap": 30})
        ing = ingest(cfg, progress=False)
        write_chunks(tmp_path / f"out{len(runs)}" / "chunks.jsonl", ing.chunks())
        assert ing.stats.files_read == 11 and ing.stats.pages == 4
        ex = list(ing.direct_examples(chunks_path=tmp_path / f"out{len(runs)}" / "again.jsonl"))  # one pass: examples + chunks.jsonl
        assert (tmp_path / f"out{len(runs)}" / "again.jsonl").read_bytes() == (tmp_path / f"out{len(runs)}" / "chunks.jsonl").read_bytes()
        assert len(ex) >= ing.stats.chunks and ing.stats.direct_examples == len(ex)
        runs.append((tmp_path / f"out{len(runs)}" / "chunks.jsonl").read_bytes())
    assert runs[0] == runs[1] == runs[2] == runs[3]
    recs = [r for _, r in read_jsonl(tmp_path / "out0" / "chunks.jsonl")]
    # one fixed order whoever reads the files: text first, then PDF and DOCX, each group in path order
    assert list(dict.fromkeys(r["metadata"]["source"] for r in recs)) == [f"d{i}.txt" for i in range(6)] + [f"a{i}.pdf" for i in range(4)] + ["b.docx"]
    assert len({r["chunk_id"] for r in recs}) == len(recs)

def test_a_worker_killed_mid_read_is_a_clear_error_naming_the_files(tmp_path, monkeypatch):
    "A real SIGKILL of the pool worker reading one PDF: the run stops with the files in flight and what to do, not a bare BrokenProcessPool."
    import multiprocessing, signal
    import finetune_nb.ingest as ingest_mod
    for i in range(5): make_pdf(tmp_path / f"p{i}.pdf", [f"A page about pears, number {i}."])
    real = ingest_mod.load_pdf
    def dies_on_p3(path, *a, **kw):
        if Path(path).name == "p3.pdf": os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
        return real(path, *a, **kw)
    monkeypatch.setattr(ingest_mod, "load_pdf", dies_on_p3)
    method = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("fork", force=True)  # workers inherit the patched reader (3.14 defaults to forkserver)
    try:
        with pytest.raises(FinetuneNBError, match=r"worker process died while reading one of these files: .*p3\.pdf") as e:
            list(ingest(cfg_for(tmp_path, num_workers=2), progress=False).chunks())
    finally: multiprocessing.set_start_method(method, force=True)
    assert "num_workers: 1" in e.value.hint
    monkeypatch.setattr(ingest_mod, "load_pdf", real)
    assert len(list(ingest(cfg_for(tmp_path, num_workers=2), progress=False).chunks())) == 5  # the next run starts a fresh pool

# ---------------------------------------------------------------- direct mode

@pytest.mark.parametrize("mode,per_chunk", [("continuation", {"continuation"}), ("passage", {"passage"}), ("both", {"continuation", "passage"})])
def test_direct_mode_turns_every_chunk_into_examples(tmp_path, mode, per_chunk):
    (tmp_path / "guide.md").write_text("# Installing\n\nRun pip install finetune-nb. Then check the version.\n\n# Tiny\n\nOk.\n")
    cfg = cfg_for(tmp_path, direct_mode=mode, langchain={"chunk_size": 80, "chunk_overlap": 0})
    ing = ingest(cfg, progress=False)
    ex = list(ing.direct_examples())
    chunks = {c["chunk_id"]: c for c in ing.chunks()}
    assert {e["metadata"]["chunk_id"] for e in ex} == set(chunks)  # never silently nothing
    for e in ex:
        user, asst = e["messages"][0]["content"], e["messages"][1]["content"]
        text = chunks[e["metadata"]["chunk_id"]]["text"]
        if e["metadata"]["direct_mode"] == "continuation":
            head = user.split("\n\n", 1)[1]
            assert text.startswith(head) and text.endswith(asst) and len(head) < len(text)
        else:
            assert asst == text and "guide.md" in user
    if mode != "continuation": assert any("about Installing?" in e["messages"][0]["content"] for e in ex)
    got = {e["metadata"]["direct_mode"] for e in ex if chunks[e["metadata"]["chunk_id"]]["text"] != "# Tiny\n\nOk."}
    assert got == per_chunk
    assert ing.stats.direct_examples == len(ex)

# ---------------------------------------------------------------- hostile and careless inputs (issue 15)

def _prepare(tmp_path, data:dict, name="h"):
    "prepare_data (no tokenizer) on a config beside `tmp_path` with `data`; returns (dataset_info, all JSONL output text)."
    from finetune_nb.dataset import prepare_data
    import yaml
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"project": {"name": name, "output_dir": "runs"}, "data": data}))
    res = prepare_data(FineTuneConfig.from_yaml(tmp_path / f"{name}.yaml"), progress=False)
    return res.info, "".join(p.read_text() for p in sorted(res.out_dir.glob("*.jsonl")))

SECRET = "root:x:0:0:SECRET-LINE-FROM-OUTSIDE:/root:/bin/bash"

def test_symlinks_out_of_the_input_folder_are_refused_unless_opted_in(tmp_path, cli):
    "Real links to a file and a folder outside the input root: reported, never read; read only with follow_symlinks_outside."
    outside = tmp_path / "outside"; outside.mkdir()
    (outside / "passwd").write_text(SECRET + "\n"); (outside / "keys").mkdir(); (outside / "keys" / "id.txt").write_text(SECRET + "\n")
    inp = tmp_path / "in" / "x"; inp.mkdir(parents=True)
    (inp / "notes.txt").write_text("Pears are sweet and ripen after picking; plums are sour until late summer.")
    (inp / "passwd.txt").symlink_to(outside / "passwd"); (inp / "keys").symlink_to(outside / "keys")
    (inp / "self").symlink_to(inp); (inp / "twice.txt").symlink_to(inp / "notes.txt")
    info, text = _prepare(tmp_path, {"input_path": "in"})
    assert "SECRET-LINE" not in text and "Pears are sweet" in text
    why = {s["file"]: s["reason"] for s in info["skipped"]}
    assert why["x/passwd.txt"].startswith(f"symbolic link to {(outside / 'passwd').resolve()}, outside the input folder: not read")
    assert "data.follow_symlinks_outside: true" in why["x/keys"] and "read under its own name" in why["x/twice.txt"] and "x/self" in why
    assert list(info["input_files"]) == ["x/notes.txt"]
    info, text = _prepare(tmp_path, {"input_path": "in", "follow_symlinks_outside": True}, name="o")
    assert "SECRET-LINE" in text and set(info["input_files"]) == {"x/notes.txt", "x/passwd.txt", "x/keys/id.txt"}
    (tmp_path / "f.yaml").write_text("project: {name: f}\ndata: {input_path: in, on_error: fail}\n")
    r = cli("prepare-data", "f.yaml")  # as a user meets it: one line, exit 1, nothing written
    assert r.returncode == 1 and r.stderr.splitlines()[-1].startswith("error: x/keys: symbolic link to"), r.stderr
    assert not (tmp_path / "runs" / "f").exists()

def test_project_outputs_inside_the_input_folder_are_not_read_back(tmp_path):
    "input_path: . beside runs/: a second prepare must not ingest the first one's train.jsonl."
    (tmp_path / "notes.md").write_text("# Pears\n\nPears ripen after picking, then soften in a cool room.")
    first, _ = _prepare(tmp_path, {"input_path": "."})
    second, _ = _prepare(tmp_path, {"input_path": "."})
    assert first["counts"]["rows_in"] == second["counts"]["rows_in"] and list(second["input_files"]) == ["notes.md"]
    assert any(s["file"] == "runs" and "project.output_dir" in s["reason"] for s in second["skipped"])

def test_a_named_pipe_does_not_hang_the_run(tmp_path):
    inp = tmp_path / "in"; inp.mkdir(); (inp / "a.txt").write_text("Pears ripen after picking."); os.mkfifo(inp / "feed.jsonl")
    info, _ = _prepare(tmp_path, {"input_path": "in"})
    assert any(s["file"] == "feed.jsonl" and "named pipe" in s["reason"] for s in info["skipped"])

def test_non_utf8_file_names_are_read_and_named(tmp_path):
    inp = tmp_path / "in"; inp.mkdir()
    with open(os.path.join(os.fsencode(inp), b"caf\xe9 notes.txt"), "w") as f: f.write("A note about coffee, in a file whose name is Latin-1.")
    with open(os.path.join(os.fsencode(inp), b"qa-\xff.jsonl"), "w") as f: f.write(json.dumps({"instruction": "Hi?", "output": "Hello."}) + "\n")
    info, text = _prepare(tmp_path, {"input_path": "in"})
    assert set(info["input_files"]) == {"caf\\xe9 notes.txt", "qa-\\xff.jsonl"} and info["counts"]["skipped"] == 0
    assert '"source":"caf\\\\xe9 notes.txt"' in text and "coffee" in text and "Hello." in text

def _delete_after_listing(monkeypatch, *names):
    "Really delete `names` (relative to the input root) after the walk has listed them and before they are read."
    import finetune_nb.dataset as ds
    real = ds.ingest
    def listed_then_deleted(config, *a, **kw):
        ing = real(config, *a, **kw)
        for n in names: (config.resolve(config.data.input_path) / n).unlink()
        return ing
    monkeypatch.setattr(ds, "ingest", listed_then_deleted)

def _odd_corpus(root:Path)->Path:
    root.mkdir()
    (root / "keep.txt").write_text("Pears ripen after picking, then soften in a cool room.")
    (root / "rows.jsonl").write_text("".join(json.dumps({"instruction": f"Question {i}?", "output": f"Answer {i}."}) + "\n" for i in range(6)))
    (root / "gone.txt").write_text("This file is deleted before it is read.")
    (root / "gone.csv").write_text("instruction,output\nq,a\n")
    (root / "gone.java").write_text(JAVA)
    for i, fruit in enumerate(("plums", "figs", "limes", "dates")):  # four PDFs: read by the process pool
        make_pdf(root / f"doc{i}.pdf", [f"A page about {fruit}, which grow on trees in warm places."])
    return root

def test_files_deleted_mid_run_are_reported_and_the_rest_goes_on(tmp_path, monkeypatch):
    from finetune_nb.dataset import prepare_data
    root = _odd_corpus(tmp_path / "in")
    _delete_after_listing(monkeypatch, "gone.txt", "gone.csv", "gone.java", "doc2.pdf")
    cfg = FineTuneConfig.validate({"project": {"output_dir": str(tmp_path / "runs"), "name": "d"}, "data": {"input_path": str(root), "num_workers": 2}})
    res = prepare_data(cfg, progress=False)
    assert {s["file"] for s in res.info["skipped"]} == {"gone.txt", "gone.csv", "gone.java", "doc2.pdf"}, res.info["skipped"]
    assert all(s["reason"].startswith("the file is gone") for s in res.info["skipped"])  # each once, though two passes look for gone.java
    text = res.train.read_text() + res.validation.read_text()
    assert "Pears ripen" in text and "Question 5?" in text and "dates" in text and "limes" not in text and "deleted before" not in text
    assert res.info["input_files"]["gone.txt"] is None and res.info["input_files"]["keep.txt"]

def test_file_deleted_mid_run_under_fail_is_a_data_error_naming_it(tmp_path, monkeypatch):
    from finetune_nb.dataset import prepare_data
    root = _odd_corpus(tmp_path / "in")
    _delete_after_listing(monkeypatch, "gone.txt")
    cfg = FineTuneConfig.validate({"project": {"output_dir": str(tmp_path / "runs"), "name": "d"}, "data": {"input_path": str(root), "on_error": "fail"}})
    with pytest.raises(DataError, match=r"^gone\.txt: the file is gone") as e: prepare_data(cfg, progress=False)
    assert e.value.file == "gone.txt"

def test_unreadable_files_and_folders_are_reported_and_the_rest_goes_on(unprivileged):
    "Real permissions (as nobody when the tests run as root): a file and a folder this user may not read."
    import shutil, tempfile, datasketch  # noqa: F401  (imported before the unprivileged child, which cannot import from /root)
    from finetune_nb.dataset import prepare_data
    d = Path(tempfile.mkdtemp())
    root = d / "in"; root.mkdir(); (root / "sub").mkdir()
    try:
        (root / "keep.txt").write_text("Pears ripen after picking, then soften in a cool room.")
        (root / "secret.txt").write_text("Not for this user."); (root / "secret.txt").chmod(0)
        (root / "sub" / "x.txt").write_text("Hidden away."); (root / "sub").chmod(0)
        for p in (root, d): p.chmod(0o777)
        cfg = lambda on_error: FineTuneConfig.validate({"project": {"output_dir": str(d / "runs"), "name": on_error},
                                                        "data": {"input_path": str(root), "on_error": on_error}})
        info, err = unprivileged(lambda: prepare_data(cfg("skip"), progress=False).info)
        assert err is None, err
        why = {s["file"]: s["reason"] for s in info["skipped"]}
        assert why["secret.txt"].startswith("cannot read the file: permission denied") and why["sub"].startswith("cannot list this folder: Permission denied")
        assert info["counts"]["train"] + info["counts"]["validation"] == 1 and list(info["input_files"]) == ["keep.txt"]
        _, err = unprivileged(lambda: prepare_data(cfg("fail"), progress=False))
        assert err.startswith("DataError: sub: cannot list this folder: Permission denied"), err
    finally:
        for p in (root / "sub", root / "secret.txt"): p.chmod(0o755)
        shutil.rmtree(d)

def test_csv_unterminated_quote_and_extra_columns_lose_no_later_row(tmp_path, cli):
    "The issue's file: 80 rows, one with two extra values, one whose quote never closes; every other row arrives."
    inp = tmp_path / "in"; inp.mkdir()
    rows = ["instruction,output"] + [f"question {i},answer {i}" for i in range(80)]
    rows[10] = "question 9,answer 9,extra,more"; rows[40] = 'question 39,"answer with open quote'
    (inp / "bad.csv").write_text("\n".join(rows) + "\n")
    info, text = _prepare(tmp_path, {"input_path": "in"})
    assert info["counts"]["rows_in"] == 78 and info["counts"]["train"] + info["counts"]["validation"] == 78
    assert [(s["line"], s["reason"].split(";")[0]) for s in info["skipped"]] == [
        (11, "4 values but the header has 2 columns, so 2 would be lost (a delimiter inside an unquoted value?)"),
        (41, "an unterminated quote: the value opened here never closes and would swallow lines 42-81")]
    assert "question 79" in text and "question 40" in text and "open quote" not in text and "extra" not in text
    (tmp_path / "f.yaml").write_text("project: {name: f}\ndata: {input_path: in, on_error: fail}\n")
    r = cli("prepare-data", "f.yaml")
    assert r.returncode == 1 and r.stderr.splitlines()[-1].startswith("error: bad.csv:11: 4 values but the header has 2 columns"), r.stderr

def test_json_nested_beyond_the_decoder_is_a_reported_row_not_a_crash(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    inp = tmp_path / "in"; inp.mkdir()
    (inp / "a.jsonl").write_text('{"instruction": "Hi?", "output": "Hello."}\n\n{"x": ' + deep + '}\n{"instruction": "Bye?", "output": "Bye."}\n')
    (inp / "b.json").write_text('[{"instruction": "Why?", "output": "Because."}, ' + deep + "]")
    info, text = _prepare(tmp_path, {"input_path": "in"})
    why = {(s["file"], s["line"]): s["reason"] for s in info["skipped"]}
    assert why[("a.jsonl", 3)].startswith("a value nested more deeply than Python can decode; the lines after it were not read")
    assert why[("b.json", 1)].startswith("not readable JSON: a value nested more deeply")
    assert "Hello." in text and "Because." in text

def test_docx_zip_bomb_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    "A DOCX whose directory promises far more data than its size is reported, not unpacked into memory."
    import zipfile
    import finetune_nb.ingest as ingest_mod
    monkeypatch.setattr(ingest_mod, "DOCX_MAX_UNPACKED", 64 << 20)  # the real limit is 1 GiB; the same check at a size a test can write
    p = make_docx(tmp_path / "bomb.docx", **REPORT)
    with zipfile.ZipFile(p, "a", zipfile.ZIP_DEFLATED) as z: z.writestr("word/media/zeros.bin", bytes(100 << 20))
    assert p.stat().st_size < 2 << 20
    sk = []
    assert list(load_docx(p, "bomb.docx", Problems("skip", sk))) == []
    assert sk[0].reason.startswith("not read: it would unpack to 0.1 GiB from") and "zip bomb" in sk[0].reason
    assert len(list(load_docx(make_docx(tmp_path / "fine.docx", **REPORT), "fine.docx"))) == 1

def test_bad_bytes_past_the_sampled_start_spoil_one_csv_row_not_the_file(tmp_path):
    "The encoding is guessed from the first MiB; a byte it cannot decode after that (was: unexpected UnicodeDecodeError) and a NUL byte each lose their row only."
    inp = tmp_path / "in"; inp.mkdir()
    body = "".join(f'"question number {i} about pears","answer {i}"\n' for i in range(40_000)).encode()
    assert len(body) > 1 << 20
    (inp / "late.csv").write_bytes(b"instruction,output\n" + body + b'"bad \xff here","x"\n"nul \x00 here","y"\n"the last one","z"\n')
    info, text = _prepare(tmp_path, {"input_path": "in", "augmentation": {"dedup": "exact"}})
    assert [(s["line"], s["reason"].split(";")[0]) for s in info["skipped"]] == [
        (40_002, "cannot decode byte 0xff as utf-8"), (40_003, "holds binary data (a NUL byte), not text")]
    assert info["counts"]["rows_in"] == 40_001 and "the last one" in text and "\\u0000" not in text

def test_files_with_nothing_in_them_are_reported_not_silently_dropped(tmp_path):
    "A header without rows, an empty list, blank lines, white space, a lone byte-order mark, zeros where text should be: each named."
    inp = tmp_path / "in"; inp.mkdir()
    (inp / "header.csv").write_text("instruction,output\n"); (inp / "empty.json").write_text("[]")
    (inp / "blank.jsonl").write_text("\n \n\n"); (inp / "spaces.txt").write_text("  \n\n\t\n")
    (inp / "bom.md").write_bytes(b"\xef\xbb\xbf"); (inp / "zeros.txt").write_bytes(b"Notes from the crash.\n" + bytes(4096))
    (inp / "ok.txt").write_text("Pears ripen after they are picked, from the inside out.")
    info, text = _prepare(tmp_path, {"input_path": "in"})
    why = {s["file"]: (s.get("line"), s["reason"].split(";")[0]) for s in info["skipped"]}
    assert why == {"header.csv": (None, "no rows, only a header"), "empty.json": (None, "no records (an empty list or object)"),
                   "blank.jsonl": (None, "no records, only blank lines"), "spaces.txt": (None, "the file holds no text, only white space"),
                   "bom.md": (None, "the file holds no text, only white space"), "zeros.txt": (2, "holds binary data (a NUL byte), not text")}, why
    ing = info["ingest"]
    assert ing["files_read"] == 1 and ing["files_skipped"] == 6 and "Pears ripen" in text and "crash" not in text
    with pytest.raises(DataError, match=r"^blank\.jsonl: no records, only blank lines"):
        _prepare(tmp_path, {"input_path": "in", "on_error": "fail"}, name="f")

def test_an_escaped_half_surrogate_loses_its_record_not_the_run(tmp_path):
    "`\\ud83d` alone (an emoji cut in two) is valid JSON to Python but no UTF-8 file can hold it (was: unexpected UnicodeEncodeError at dedup)."
    inp = tmp_path / "in"; inp.mkdir()
    (inp / "a.jsonl").write_text('{"instruction": "Smile?", "output": "Yes \\ud83d\\ude00"}\n'
                                 '{"instruction": "Cut?", "output": "half \\ud83d"}\n{"instruction": "After?", "output": "Still read."}\n')
    (inp / "b.json").write_text('[{"instruction": "Low?", "output": "\\udc00 alone"},\n {"instruction": "Next?", "output": "Kept too."}]')
    info, text = _prepare(tmp_path, {"input_path": "in"})
    assert [(s["file"], s["line"], s["reason"].split(",")[0]) for s in info["skipped"]] == [
        ("a.jsonl", 2, "holds the escape \\ud83d"), ("b.json", 1, "holds the escape \\udc00")]
    assert info["counts"]["rows_in"] == 3 and "\U0001f600" in text and "Still read." in text and "Kept too." in text

def test_a_csv_value_longer_than_the_csv_module_limit_is_kept(tmp_path):
    "A whole document in one cell (300,000 characters; the csv module stops at 131,072) arrives whole, and so does the next row."
    inp = tmp_path / "in"; inp.mkdir()
    (inp / "docs.csv").write_text("instruction,output\nSummarise the report.,%s\nNext?,Yes.\n" % ("pears ripen slowly " * 15_790))
    info, text = _prepare(tmp_path, {"input_path": "in"})
    assert info["skipped"] == [] and info["counts"]["rows_in"] == 2 and text.count("pears ripen slowly") == 15_790
