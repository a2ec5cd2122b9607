"The GPU proof script (benchmarks/gpu_proof.py) on the CPU with --tiny: every part runs its code path and prints its figures."
import json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "CUDA_VISIBLE_DEVICES": ""}


def _run(*args, timeout=900):
    return subprocess.run([sys.executable, str(ROOT/"benchmarks"/"gpu_proof.py"), *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def test_without_a_gpu_it_refuses_and_says_why():
    p = _run("--parts", "real", timeout=120)
    assert p.returncode == 2 and "needs a CUDA GPU" in p.stderr and "--tiny" in p.stderr


def test_unknown_part_is_refused():
    p = _run("--tiny", "--parts", "lora_sdpa,mfu", timeout=120)
    assert p.returncode != 0 and "unknown part" in p.stderr


@pytest.fixture(scope="module")
def tiny_lines():
    p = _run("--tiny")
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    return {l["part"]: l for l in lines}


def test_every_part_reports(tiny_lines):
    assert set(tiny_lines) == {"machine", "lora_sdpa", "lora_flash", "stack", "real"}
    assert not [p for p, l in tiny_lines.items() if "error" in l], tiny_lines
    assert tiny_lines["machine"]["versions"]["torch"]


def test_lora_part_has_throughput_and_ratio(tiny_lines):
    l = tiny_lines["lora_sdpa"]
    assert l["ours"]["tokens_per_s"] > 0 and l["baseline_trl_defaults"]["tokens_per_s"] > 0 and l["tokens_per_s_ratio"] > 0


def test_stack_part_compares_ours_bare_and_qlora(tiny_lines):
    l = tiny_lines["stack"]
    for k in ("ours", "bare", "ours_qlora"): assert l[k]["tokens_per_s"] > 0 and l[k]["first_loss"] > 0
    assert l["ours_vs_bare_tokens_per_s"] > 0 and l["qlora_vs_lora_tokens_per_s"] > 0


def test_real_part_runs_every_stage_and_verifies_gguf(tiny_lines):
    l = tiny_lines["real"]
    assert l["mode"] == "finetuned" and l["device"] == "cpu"
    assert {s for s, (status, _) in l["stages"].items() if status == "ran"} >= {"prepare-data", "train", "evaluate", "merge", "export"}
    assert l["eval_loss"]["tuned"] < l["eval_loss"]["base"]
    assert set(l["gguf"]) == {"f16", "q8_0"} and all(g["passed"] for g in l["gguf"].values())
