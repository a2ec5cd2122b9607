"""Execute notebooks in place so the committed pages (and the docs site) show their outputs.

Usage: python scripts/execute_nbs.py [NOTEBOOK ...]   (default: every notebook in nbs/, not workflows/)
Then run `nbdev-clean`. Cells flagged with a test flag (#| slow, #| gpu, #| notest) are not run.
"""
import os, sys, tomllib
from pathlib import Path
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
FLAGS = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["nbdev"]["tst_flags"].split())


def flagged(cell):
    "True for cells nbdev-test would not run: a test flag, or `#| eval: false`."
    dirs = {l[2:].strip().replace(" ", "") for l in cell.source.splitlines() if l.startswith("#|")}
    return bool(dirs & (FLAGS | {"eval:false"}))


def execute(path):
    nb = nbformat.read(path, as_version=4)
    skipped = {i: c.source for i, c in enumerate(nb.cells) if c.cell_type == "code" and flagged(c)}
    for i in skipped: nb.cells[i].source = ""  # nbclient skips empty cells
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    for i, src in skipped.items(): nb.cells[i].source, nb.cells[i].outputs = src, []
    nbformat.write(nb, path)
    print(f"executed {path.relative_to(ROOT)}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    paths = [Path(p).resolve() for p in sys.argv[1:]] or sorted((ROOT / "nbs").glob("*.ipynb"))
    for p in paths: execute(p)
