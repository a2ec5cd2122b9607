"The fake Ollama server lives in `finetune_nb.testing`; this re-export serves nbs/11a_ollama.ipynb until it imports it from there."
from finetune_nb.testing import FakeOllama
__all__ = ["FakeOllama"]
