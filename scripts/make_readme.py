"""Render nbs/index.ipynb to README.md (GitHub markdown), as `nbdev-readme` does where Quarto is installed.

Quarto cannot be installed on our machines, so this keeps README.md in sync with index.ipynb:
`python scripts/make_readme.py` writes it, `--check` fails when README.md is stale.
"""
import re, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- Generated from nbs/index.ipynb by scripts/make_readme.py: edit the notebook, not this file. -->\n\n"


def _directives(src):
    "The #| directives of a cell and its source without them."
    lines = src.splitlines()
    dirs = {l[3:].strip().split(":")[0].split()[0] for l in lines if l.startswith("#|") and l[3:].strip()}
    return dirs, "\n".join(l for l in lines if not l.startswith("#|")).strip()


def _outputs(cell):
    out = []
    for o in cell.get("outputs", []):
        text = o.get("text") if o["output_type"] == "stream" else o.get("data", {}).get("text/markdown") or o.get("data", {}).get("text/plain")
        if text: out.append(text if isinstance(text, str) else "".join(text))
    return out


def render(nb_path=ROOT / "nbs" / "index.ipynb"):
    nb = nbformat.read(nb_path, as_version=4)
    parts = []
    for cell in nb.cells:
        dirs, src = _directives(cell.source)
        if "hide" in dirs or not src and not _outputs(cell): continue
        if cell.cell_type == "markdown": parts.append(src)
        elif cell.cell_type == "code":
            if "echo" not in dirs: parts.append(f"```python\n{src}\n```")
            parts += [f"```\n{o.rstrip()}\n```" for o in _outputs(cell)]
    text = "\n\n".join(parts)
    return HEADER + re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


if __name__ == "__main__":
    readme, text = ROOT / "README.md", render()
    if "--check" in sys.argv:
        if not readme.exists() or readme.read_text(encoding="utf-8") != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python scripts/make_readme.py`")
        print("README.md is in sync with nbs/index.ipynb")
    else:
        readme.write_text(text, encoding="utf-8")
        print(f"wrote {readme}")
