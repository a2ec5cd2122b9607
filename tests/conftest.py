import os, subprocess, sys
import pytest

# Tests never touch a hub: everything runs on models the package builds itself.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory):
    "A private model cache, so tests never depend on what a previous run left behind."
    os.environ["FINETUNE_NB_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def cli(tmp_path):
    "Run `finetune-nb ARGS` as a user would (a subprocess); returns the CompletedProcess."
    def run(*args, env=None, cwd=None):
        return subprocess.run([sys.executable, "-m", "finetune_nb", *map(str, args)], capture_output=True, text=True,
                              cwd=cwd or tmp_path, env={**os.environ, **(env or {})}, timeout=300)
    return run


@pytest.fixture(scope="session")
def llama_cpp():
    "llama-cpp-python, which the llama.cpp proofs need: missing, they fail and say so (never skip)."
    try: import llama_cpp
    except ImportError: pytest.fail("llama-cpp-python is not installed, so the llama.cpp proofs cannot run: "
                                    "pip install 'finetune-nb[gguf-kquants]' (the dev extra and .ci/run install it)")
    return llama_cpp
