"""Ingestion throughput and memory: our ingest -> chunks -> direct-mode records -> JSONL path against a naive
LangChain pipeline (TextLoader/PyPDFLoader/Docx2txtLoader -> RecursiveCharacterTextSplitter -> per-row Python ->
json.dumps), side by side on the same generated corpus. Prints ONE JSON line.

    python benchmarks/prepare_data.py            # ~25 MB corpus (txt, md, jsonl, PDF, DOCX)
    python benchmarks/prepare_data.py --quick    # ~5 MB, for a smoke run

Needs the dev extra (`pip install -e ".[dev]"`: reportlab makes the PDFs, docx2txt is the baseline's DOCX loader).

Figures: end-to-end MB/s of both and their ratio (goal >= 3x); peak RSS of our path on 10x the corpus / on 1x,
each in a fresh subprocess (goal <= 1.2); PDF pages/s of our reader and of PyPDFLoader. For the whole stage, also
the seconds of `prepare_data` itself (ingest, cleaning, dedup, split, dataset_info.json and card) with near-duplicate
removal (the default) and with exact dedup only: it does far more than the naive pipeline, so it has no ratio.
"""
import argparse, json, os, random, resource, subprocess, sys, tempfile, time, warnings
from pathlib import Path

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _rss import own_peak_kb
CHUNK, OVERLAP = 1000, 100

WORDS = ("the model data training token layer adapter corpus document page chunk system value result method "
         "learning rate batch gradient loss epoch weight memory file stream record split format quality review "
         "context answer question example source index vector matrix process worker output input config").split()

def _text(rng, n_chars:int)->str:
    "Paragraphs of 2-9 sentences of random words, about `n_chars` long."
    out, size = [], 0
    while size < n_chars:
        para = " ".join(" ".join(rng.choices(WORDS, k=rng.randint(6, 22))).capitalize() + "." for _ in range(rng.randint(2, 9)))
        out.append(para); size += len(para) + 2
    return "\n\n".join(out)

def make_corpus(root:Path, scale:float=1.0, seed:int=0)->dict:
    "txt/md/jsonl plus PDFs and DOCX files, about 25 MB at scale 1."
    from finetune_nb.testing import make_docx, make_pdf
    rng = random.Random(seed); root.mkdir(parents=True, exist_ok=True)
    counts = dict(txt=int(32 * scale) or 1, md=int(16 * scale) or 1, jsonl=int(6 * scale) or 1, pdf=int(24 * scale) or 1, docx=int(8 * scale) or 1)
    for i in range(counts["txt"]): (root / f"txt/doc{i:03d}.txt").parent.mkdir(exist_ok=True); (root / f"txt/doc{i:03d}.txt").write_text(_text(rng, 400_000))
    for i in range(counts["md"]):
        (root / "md").mkdir(exist_ok=True)
        (root / f"md/guide{i:03d}.md").write_text("\n\n".join(f"## Section {j}\n\n{_text(rng, 4000)}" for j in range(100)))
    for i in range(counts["jsonl"]):
        (root / "rows").mkdir(exist_ok=True)
        with open(root / f"rows/qa{i:02d}.jsonl", "w") as f:
            for j in range(1500):
                f.write(json.dumps({"instruction": " ".join(rng.choices(WORDS, k=12)) + "?", "input": "", "output": _text(rng, 200)}) + "\n")
    for i in range(counts["pdf"]):
        (root / "pdf").mkdir(exist_ok=True)
        pages = ["\n".join(" ".join(rng.choices(WORDS, k=14)) for _ in range(50)) for _ in range(20)]
        make_pdf(root / f"pdf/report{i:03d}.pdf", pages)
    for i in range(counts["docx"]):
        (root / "docx").mkdir(exist_ok=True)
        paras = [_text(rng, 300) for _ in range(150)]
        table = [[" ".join(rng.choices(WORDS, k=3)) for _ in range(3)] for _ in range(20)]
        make_docx(root / f"docx/memo{i:03d}.docx", [*paras, table])
    return counts

def corpus_bytes(root:Path)->int: return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())

# ---------------------------------------------------------------- the two pipelines

def ours(root:Path, out:Path, workers:int=0)->dict:
    "Our path: ingest -> chunks.jsonl + direct-mode records (and JSONL rows) -> records.jsonl, one pass."
    from finetune_nb.config import FineTuneConfig
    from finetune_nb.core import write_jsonl
    from finetune_nb.ingest import ingest
    cfg = FineTuneConfig.validate({"data": {"input_path": str(root), "num_workers": workers,
                                            "langchain": {"chunk_size": CHUNK, "chunk_overlap": OVERLAP}}})
    ing = ingest(cfg, progress=False)
    def records():
        for r in ing.rows(): yield {"row": r.data, "metadata": {"source": r.source, "line": r.line, "format": r.format}}
        yield from ing.direct_examples(chunks_path=out / "chunks.jsonl")
    n = write_jsonl(out / "records.jsonl", records())
    return dict(records=n, chunks=ing.stats.chunks, pages=ing.stats.pages)

def naive(root:Path, out:Path)->dict:
    "The baseline: LangChain loaders -> RecursiveCharacterTextSplitter -> per-row Python -> json.dumps."
    from langchain_community.document_loaders import Docx2txtLoader, PyPDFLoader, TextLoader
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK, chunk_overlap=OVERLAP)
    out.mkdir(parents=True, exist_ok=True); n = nc = 0
    with open(out / "chunks.jsonl", "w") as cf, open(out / "records.jsonl", "w") as rf:
        for p in sorted(root.rglob("*")):
            if not p.is_file(): continue
            ext = p.suffix.lower()
            if ext == ".jsonl":
                for line in open(p, encoding="utf-8"):
                    rf.write(json.dumps({"row": json.loads(line), "metadata": {"source": str(p)}}) + "\n"); n += 1
                continue
            loader = {".txt": TextLoader, ".md": TextLoader, ".pdf": PyPDFLoader, ".docx": Docx2txtLoader}[ext](str(p))
            for i, d in enumerate(splitter.split_documents(loader.load())):
                cf.write(json.dumps({"text": d.page_content, "metadata": d.metadata}) + "\n"); nc += 1
                words = d.page_content.split(" "); k = len(words) // 3
                rec = {"messages": [{"role": "user", "content": "Continue this passage:\n\n" + " ".join(words[:k])},
                                    {"role": "assistant", "content": " ".join(words[k:])}], "metadata": dict(d.metadata, chunk=i)}
                rf.write(json.dumps(rec) + "\n"); n += 1
    return dict(records=n, chunks=nc)

def prepare_s(root:Path, out:Path, dedup:str)->float:
    "Seconds of the whole `prepare_data` stage on `root` (no tokenizer: no token statistics)."
    from finetune_nb.config import FineTuneConfig
    from finetune_nb.dataset import prepare_data
    cfg = FineTuneConfig.validate({"project": {"output_dir": str(out)}, "data": {"input_path": str(root), "augmentation": {"dedup": dedup},
                                                                                "langchain": {"chunk_size": CHUNK, "chunk_overlap": OVERLAP}}})
    t = time.perf_counter(); prepare_data(cfg, progress=False)
    return time.perf_counter() - t

def cpu_s()->float:
    "CPU seconds of this process and its finished children (pool workers)."
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

def timed(fn, *args)->tuple:
    "(result, wall seconds, CPU seconds) of `fn(*args)`."
    c, t = cpu_s(), time.perf_counter(); r = fn(*args)
    return r, time.perf_counter() - t, cpu_s() - c

def pdf_pages_per_s(root:Path)->dict:
    "Pages/s reading every PDF, one process: our reader (pypdfium2) and LangChain's PyPDFLoader (pypdf)."
    from langchain_community.document_loaders import PyPDFLoader
    from finetune_nb.ingest import load_pdf
    pdfs = sorted(root.rglob("*.pdf"))
    n_ours, t_ours, c_ours = timed(lambda: sum(1 for p in pdfs for _ in load_pdf(p)))
    n_naive, t_naive, c_naive = timed(lambda: sum(len(PyPDFLoader(str(p)).load()) for p in pdfs))
    assert n_ours == n_naive, (n_ours, n_naive)
    return dict(pdf_pages=n_ours, pdf_pages_per_s=round(n_ours / t_ours, 1), pdf_pages_per_s_pypdfloader=round(n_naive / t_naive, 1),
                pdf_speedup=round(t_naive / t_ours, 2), pdf_pages_per_cpu_s=round(n_ours / c_ours, 1),
                pdf_pages_per_cpu_s_pypdfloader=round(n_naive / c_naive, 1))

def peak_rss_mb(corpus:Path, out:Path)->float:
    "Peak RSS (MB) of our path on `corpus`, in a fresh subprocess (main process and the largest pool worker)."
    r = subprocess.run([sys.executable, __file__, "--rss-run", str(corpus), str(out)], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])["peak_rss_mb"]

def replicate(src:Path, dst:Path, times:int):
    "`times` hard-linked copies of the corpus under `dst` (no extra disk, different relative paths)."
    for k in range(times):
        for p in src.rglob("*"):
            if p.is_file():
                q = dst / f"copy{k}" / p.relative_to(src); q.parent.mkdir(parents=True, exist_ok=True); os.link(p, q)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a ~5 MB corpus")
    ap.add_argument("--rss-run", nargs=2, metavar=("CORPUS", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.rss_run:
        ours(Path(a.rss_run[0]), Path(a.rss_run[1]))
        self_, kids = own_peak_kb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps({"peak_rss_mb": round(max(self_, kids) / 1024, 1), "main_mb": round(self_ / 1024, 1), "worker_mb": round(kids / 1024, 1)}))
        return
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); corpus = d / "corpus"
        t = time.perf_counter(); counts = make_corpus(corpus, 0.2 if a.quick else 1.0); t_gen = time.perf_counter() - t
        size = corpus_bytes(corpus); mb = size / 1e6
        ours(corpus, d / "warm")  # warm the page cache for both
        sample = d / "sample"  # one file of each kind: the naive pipeline's lazy imports happen here, not in its timing
        for sub in sorted(p for p in corpus.iterdir() if p.is_dir()):
            f = sorted(sub.iterdir())[0]; (sample / sub.name).mkdir(parents=True); os.link(f, sample / sub.name / f.name)
        naive(sample, d / "warm_naive")
        best = {}
        for _ in range(1 if a.quick else 2):  # alternate and keep the best of each: the machine is shared
            for name, fn in (("ours", ours), ("naive", naive)):
                r, wall, cpu = timed(fn, corpus, d / name)
                if wall < best.get(name, (None, float("inf")))[1]: best[name] = (r, wall, cpu)
        (r_ours, t_ours, c_ours), (r_naive, t_naive, c_naive) = best["ours"], best["naive"]
        pdf = pdf_pages_per_s(corpus)
        prep_near, prep_exact = prepare_s(corpus, d / "prep_near", "near"), prepare_s(corpus, d / "prep_exact", "exact")
        rss1 = peak_rss_mb(corpus, d / "rss1")
        big = d / "corpus10"; replicate(corpus, big, 10)
        rss10 = peak_rss_mb(big, d / "rss10")
        print(json.dumps({
            "corpus_mb": round(mb, 1), "files": counts, "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 1), "generate_s": round(t_gen, 1),
            "ours_mb_per_s": round(mb / t_ours, 2), "naive_mb_per_s": round(mb / t_naive, 2), "speedup_vs_naive": round(t_naive / t_ours, 2),
            "ours_s": round(t_ours, 2), "naive_s": round(t_naive, 2), "ours_cpu_s": round(c_ours, 2), "naive_cpu_s": round(c_naive, 2),
            "cpu_efficiency_vs_naive": round(c_naive / c_ours, 2), "ours_records": r_ours["records"], "naive_records": r_naive["records"],
            "ours_chunks": r_ours["chunks"], "naive_chunks": r_naive["chunks"],
            "prepare_data_s": round(prep_near, 2), "prepare_data_mb_per_s": round(mb / prep_near, 2), "prepare_data_exact_dedup_s": round(prep_exact, 2),
            "peak_rss_mb_1x": rss1, "peak_rss_mb_10x": rss10, "rss_ratio_10x_over_1x": round(rss10 / rss1, 3),
            **pdf}))

if __name__ == "__main__":
    main()
