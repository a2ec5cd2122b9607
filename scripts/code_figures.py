"""Figures on how the notebooks and the package read, as one JSON line (issue 20 measures before → after with it).

    python scripts/code_figures.py

- notebooks, cells, exported cells and their mean length in lines (fastcore's nbs average 8, claudette's 11);
- the longest function or method in finetune_nb/ and its length in lines;
- lines over 120 characters in the notebooks' code cells (count and share);
- functions and classes per exported cell (cells exporting more than one definition);
- `duplicates` pairs outside tests/ (the library's command, when it is on PATH).
"""
import ast, json, re, shutil, subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def notebook_figures()->dict:
    import nbformat
    cells = exported = exported_lines = long_lines = code_lines = multi = 0
    for nb in sorted((ROOT/"nbs").glob("*.ipynb")):
        for c in nbformat.read(nb, as_version=4).cells:
            cells += 1
            if c.cell_type != "code": continue
            lines = c.source.splitlines()
            code_lines += len(lines); long_lines += sum(len(l) > 120 for l in lines)
            if re.match(r"#\|\s*export", c.source):
                body = [l for l in lines if not l.startswith("#|")]
                exported += 1; exported_lines += len(body)
                try: defs = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in ast.parse("\n".join(body)).body)
                except SyntaxError: defs = 0
                multi += defs > 1
    return dict(notebooks=len(list((ROOT/"nbs").glob("*.ipynb"))), cells=cells, exported_cells=exported,
                mean_exported_cell_lines=round(exported_lines / max(exported, 1), 1), cells_with_several_definitions=multi,
                lines_over_120=long_lines, share_over_120=round(long_lines / max(code_lines, 1), 4))


def longest_function()->dict:
    best = (0, "")
    for py in sorted((ROOT/"finetune_nb").glob("*.py")):
        for n in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                best = max(best, (n.end_lineno - n.lineno + 1, f"{py.stem}.{n.name}"))
    return dict(longest_function_lines=best[0], longest_function=best[1])


def duplicate_pairs()->int|None:
    if not shutil.which("duplicates"): return None
    out = subprocess.run(["duplicates", "--most", "200", "--seconds", "120"], cwd=ROOT, capture_output=True, text=True).stdout
    rows = [l for l in out.splitlines() if re.match(r"\s*D\d+ ", l)]
    return sum(not any(side.strip().startswith("tests/") for side in re.split(r"\s~\s", l.split(" ", 1)[1].split("(")[0].strip()))
               for l in rows if " ~ " in l)


if __name__ == "__main__":
    print(json.dumps({**notebook_figures(), **longest_function(), "duplicate_pairs_outside_tests": duplicate_pairs()}))
