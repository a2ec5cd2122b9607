"The command line the benchmarks against the fake Anthropic API share; importing this puts the checkout's package first."
import argparse, logging, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def api_args(**sizes:int)->argparse.Namespace:
    "Parse `--NAME N` for each of `sizes` (their defaults), then --concurrency, --latency and --repeats."
    ap = argparse.ArgumentParser()
    for name, default in sizes.items(): ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    logging.getLogger("finetune_nb").setLevel(logging.WARNING)
    return a
