#!/usr/bin/env python3
"""Pack, into .gpu/1, .gpu/2, ..., what the GPU machine lacks for benchmarks/gpu_proof.sh (it has no network).

    python scripts/gpu_pack.py          # then one device call per bundle, each carrying .gpu/K

The GPU image (the device tool's KINDS.md, read 2026-11-17) already holds PyTorch, transformers, peft,
accelerate and much else, for Python 3.12. This walks finetune-nb's requirements as installed here, drops
what the image has, and downloads the rest at the versions installed here as x86-64 wheels for CPython 3.12
(`pip download --no-deps`; a package published only as an sdist is pure Python and is built into a wheel
here). The device tool carries at most 64 MiB a call, so the wheels and the real model's GGUF (cut into
chunks) are packed into bundles of at most --max-mb each, the training stack first: bundle 1 alone runs the
parts `lora_*` and `stack`; the part `real` runs once every bundle has been carried to the same warm machine
(gpu_proof.sh keeps what each call brings in /root/gpu-stage). .gpu/ is ignored by git.
"""
import argparse, hashlib, json, re, shutil, subprocess, sys, tempfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

# Python packages of the GPU image, from the device tool's KINDS.md ("Python packages already there").
ON_GPU_IMAGE = set("""absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader
lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl
meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13
nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy
seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions
typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp""".split())
# Heavy requirements the GPU proof never imports (notebook servers, docs tooling).
NOT_NEEDED = {"jupyter", "nbdev", "papermill", "ipywidgets", "notebook", "jupyterlab"}
# What parts lora_* and stack import beyond the image (finetune_nb.train imports trl and datasets lazily).
FIRST = ["bitsandbytes", "trl", "datasets", "dill", "multiprocess", "pydantic", "pydantic-core", "annotated-types",
         "typing-inspection", "orjson", "pyyaml"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]


def norm(name:str)->str: return re.sub(r"[-_.]+", "-", name).lower()


def closure(root:str, extras:set)->dict:
    "name -> installed version of `root`'s requirements (with `extras`), transitively, as installed here."
    seen, todo = {}, [(root, extras)]
    while todo:
        name, ex = todo.pop()
        try: dist = distribution(name)
        except PackageNotFoundError: continue
        for req in dist.requires or []:
            rname, _, marker = req.partition(";")
            m = re.match(r"\s*([A-Za-z0-9_.-]+)", rname)
            sub = norm(m.group(1))
            if "extra ==" in marker and not any(f'extra == "{e}"' in marker for e in ex): continue
            if sub in seen or sub in NOT_NEEDED: continue
            try: seen[sub] = distribution(sub).version
            except PackageNotFoundError: continue
            todo.append((sub, set()))
    return seen


def download(need:dict, dest:Path):
    "Wheels of `need` (name -> version) for CPython 3.12 on x86-64 into `dest`."
    plat = [x for p in PLATFORMS for x in ("--platform", p)]
    for n, v in sorted(need.items()):
        got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                              "--implementation", "cp", *plat, "-d", str(dest), f"{n}=={v}"], capture_output=True, text=True)
        if got.returncode:  # an sdist only (rouge-score, javalang): pure Python, so a wheel built here works there
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), f"{n}=={v}"], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extras", default="qlora")
    ap.add_argument("--dest", default=".gpu")
    ap.add_argument("--max-mb", type=float, default=60)
    ap.add_argument("--gguf", default=None, help="the real model (default: scripts/fetch_real_models.py smollm2)")
    a = ap.parse_args()
    need = {n: v for n, v in closure("finetune-nb", set(a.extras.split(","))).items() if n not in ON_GPU_IMAGE}
    gguf = Path(a.gguf or subprocess.run([sys.executable, str(Path(__file__).parent/"fetch_real_models.py"), "smollm2"],
                                         capture_output=True, text=True, check=True).stdout.split()[-1])
    dest, cap = Path(a.dest), int(a.max_mb * 2**20)
    if dest.exists(): shutil.rmtree(dest)
    with tempfile.TemporaryDirectory() as tmp:
        download(need, Path(tmp))
        wheels = sorted(Path(tmp).glob("*.whl"), key=lambda w: (next((i for i, f in enumerate(FIRST) if norm(w.name.split("-")[0]) == f),
                                                                      len(FIRST)), w.name))
        bundles, size = [[]], 0
        for w in wheels:
            if size + w.stat().st_size > cap and bundles[-1]: bundles.append([]); size = 0
            bundles[-1].append(w); size += w.stat().st_size
        for k, files in enumerate(bundles, 1):
            (dest/str(k)).mkdir(parents=True)
            for w in files: shutil.copy2(w, dest/str(k)/w.name)
    # the GGUF in chunks filling the last bundle, then new ones; gpu_proof.sh joins them in name order
    k, room, off, n, total = len(bundles), cap - size, 0, 0, gguf.stat().st_size
    with open(gguf, "rb") as f:
        while off < total:
            if room <= 2**20: k, room = k + 1, cap; (dest/str(k)).mkdir(parents=True)
            chunk = f.read(room)
            (dest/str(k)/f"model.gguf.part{n:02d}").write_bytes(chunk)
            off, room, n = off + len(chunk), room - len(chunk), n + 1
    (dest/str(k)/"model.json").write_text(json.dumps({"name": gguf.name, "parts": n, "sha256": sha256(gguf)}))
    for d in sorted(dest.iterdir(), key=lambda p: int(p.name)):
        print(f"{d}: {sum(f.stat().st_size for f in d.iterdir()) / 2**20:.1f} MB, {len(list(d.iterdir()))} files")


def sha256(path:Path)->str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20): h.update(block)
    return h.hexdigest()


if __name__ == "__main__":
    main()
