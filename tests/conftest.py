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


@pytest.fixture
def unprivileged():
    """Run `fn()` where file permissions bind, returning (result, None) or (None, "ExcType: message"). Root reads any file, so
    as root `fn` runs in a forked child that has dropped to nobody (a real EACCES; modules already imported stay usable)."""
    import pickle
    def run(fn):
        if os.geteuid() != 0:
            try: return fn(), None
            except Exception as e: return None, f"{type(e).__name__}: {e}"
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop privileges, run, send the outcome back, leave without running the parent's exit hooks
            os.close(r)
            try:
                os.setgroups([]); os.setgid(65534); os.setuid(65534)
                out = (fn(), None)
            except BaseException as e: out = (None, f"{type(e).__name__}: {e}")
            try: data = pickle.dumps(out)
            except Exception: data = pickle.dumps((None, f"unpicklable result: {out!r}"))
            with os.fdopen(w, "wb") as f: f.write(data)
            os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f: data = f.read()
        os.waitpid(pid, 0)
        return pickle.loads(data)
    return run


@pytest.fixture(scope="session")
def llama_cpp():
    "llama-cpp-python, which the llama.cpp proofs need: missing, they fail and say so (never skip)."
    try: import llama_cpp
    except ImportError: pytest.fail("llama-cpp-python is not installed, so the llama.cpp proofs cannot run: "
                                    "pip install 'finetune-nb[gguf-kquants]' (the dev extra and .ci/run install it)")
    return llama_cpp


@pytest.fixture
def fake(monkeypatch):
    """The local fake Anthropic API (real HTTP) with the SDK pointed at it; its judge scores an answer equal to
    the reference 5, another 2."""
    from finetune_nb.testing import KEY, FakeAnthropic
    with FakeAnthropic() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        yield server
