"The notebooks read in order: each imports only from the notebooks before it, and the sidebar and the index list them so."
import re
from pathlib import Path

import nbformat, yaml

NBS = Path(__file__).resolve().parents[1]/"nbs"
NUMBERED = sorted(p for p in NBS.glob("*.ipynb") if re.match(r"\d", p.name))
IMPORT = re.compile(r"(?:from\s+finetune_nb\.(\w+)\s+import|import\s+finetune_nb\.(\w+))")


def module_of(nb)->str|None:
    for c in nb.cells:
        if m := re.search(r"#\|\s*default_exp\s+(\S+)", c.source): return m.group(1)


def test_every_notebook_imports_only_from_earlier_notebooks():
    seen, late = set(), []
    for path in NUMBERED:
        nb = nbformat.read(path, as_version=4)
        mod = module_of(nb)
        for c in nb.cells:
            if c.cell_type != "code": continue
            for m in IMPORT.finditer(c.source):
                used = m.group(1) or m.group(2)
                if used != mod and used not in seen: late.append(f"{path.name} imports finetune_nb.{used}")
        seen.add(mod)
    assert not late, "a notebook imports from a later one (renumber, or move the definition down): " + "; ".join(late)


def sidebar_notebooks()->list[str]:
    def walk(items):
        for it in items:
            if isinstance(it, str): yield it
            else: yield from walk(it.get("contents", []))
    return list(walk(yaml.safe_load((NBS/"sidebar.yml").read_text())["website"]["sidebar"]["contents"]))


def test_the_sidebar_lists_the_notebooks_in_their_order():
    listed = [n for n in sidebar_notebooks() if re.match(r"\d", n)]
    assert listed == [p.name for p in NUMBERED]


def test_the_index_table_lists_the_notebooks_in_their_order():
    text = "".join(c.source for c in nbformat.read(NBS/"index.ipynb", as_version=4).cells)
    rows = re.findall(r"^\| \[(\w+)\]\((\w+)\.html\)", text, flags=re.M)
    documented = [p for p in NUMBERED if module_of(nbformat.read(p, as_version=4)) not in (None, "__main__")]
    assert [r[0] for r in rows] == [p.stem for p in documented]
    assert [r[1] for r in rows] == [re.sub(r"^\d+[a-z]?_", "", p.stem) for p in documented]
