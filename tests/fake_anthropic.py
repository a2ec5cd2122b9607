"The fake Anthropic API lives in `finetune_nb.testing`; this re-export serves tests/test_cli.py until it imports it from there."
from finetune_nb.testing import KEY, FakeAnthropic
__all__ = ["KEY", "FakeAnthropic"]
