"Atomic writes survive a real SIGKILL; JSONL errors name file:line; torn last lines warn."
import json, os, signal, subprocess, sys, warnings
import pytest
from finetune_nb.core import DataError, TornLineWarning, read_jsonl, write_jsonl, write_json, sha256_file


def test_sigkill_mid_write_keeps_old_file_and_no_temp(tmp_path):
    target = tmp_path / "train.jsonl"
    write_jsonl(target, ({"i": i} for i in range(3)))
    old = target.read_bytes()
    code = ("import sys\nfrom finetune_nb.core import write_jsonl\n"
            "def rows():\n    for i in range(10**9):\n        if i == 5000: print('go', flush=True)\n        yield {'i': i, 'x': 'y'*200}\n"
            f"write_jsonl({str(target)!r}, rows())\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "go"
    child.send_signal(signal.SIGKILL); child.wait()
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == old
    temps = [p.name for p in tmp_path.iterdir() if p.name != "train.jsonl"]
    # a killed writer can leave only its one hidden temp file, never a torn target
    assert len(temps) == 1 and temps[0].startswith(".train.jsonl.") and temps[0].endswith(".tmp")


def test_written_file_has_normal_permissions(tmp_path):
    p = write_json(tmp_path / "m.json", {"a": 1})
    assert p.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    m = os.umask(0); os.umask(m); return m


def test_bad_line_names_file_and_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"a": 1}\n{"a": 2,}\n')
    with pytest.raises(DataError) as e: list(read_jsonl(p))
    assert f"{p}:2: not valid JSON" in str(e.value) and e.value.line == 2


def test_non_utf8_line_gives_byte_offset(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: not UTF-8 \(byte 19 of the file\)"): list(read_jsonl(p))


def test_truncated_file_warns_and_keeps_complete_rows(tmp_path):
    full = b"".join(json.dumps({"i": i}).encode() + b"\n" for i in range(50))
    p = tmp_path / "cut.jsonl"
    p.write_bytes(full[: len(full) - 4])  # cut inside the last row, as a crash would
    skipped = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rows = list(read_jsonl(p, skipped=skipped))
    assert [r["i"] for _, r in rows] == list(range(49))
    assert [s.line for s in skipped] == [50] and w[0].category is TornLineWarning


def test_skip_mode_counts_every_bad_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"a": 1}\nnot json\n\n[1,\n{"a": 2}\n')
    skipped = []
    rows = list(read_jsonl(p, on_error="skip", skipped=skipped))
    assert [n for n, _ in rows] == [1, 5] and [s.line for s in skipped] == [2, 4]


def test_sha256_file_streams(tmp_path):
    p = tmp_path / "b"
    p.write_bytes(b"x" * (3 << 20))
    import hashlib
    assert sha256_file(p) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()


# -- output folders: nothing of yours replaced, a killed swap leaves a complete folder -------------------

from finetune_nb.core import OUTPUT_MARKER, FinetuneNBError, atomic_dir, check_replaceable, output_kind, recover_dir

_SWAP_CHILD = """
import os, sys
from finetune_nb.core import atomic_dir
where = sys.argv[2]
def pause(at):
    if at == where: print(at, flush=True); sys.stdin.readline()
rename, n = os.rename, [0]
def stepped(a, b):
    n[0] += 1; pause(f"before rename {n[0]}"); rename(a, b); pause(f"after rename {n[0]}")
os.rename = stepped
with atomic_dir(sys.argv[1], "merged") as tmp:
    for i in range(3): (tmp / f"shard-{i}").write_bytes(b"new" * 1000)
    pause("building")
pause("done")
"""


@pytest.mark.parametrize("where,expect", [("building", b"old"), ("before rename 1", b"old"), ("after rename 1", b"new"),
                                          ("before rename 2", b"new"), ("after rename 2", b"new"), ("done", b"new")])
def test_sigkill_at_each_step_of_a_folder_swap(tmp_path, where, expect):
    out = tmp_path / "merged"
    with atomic_dir(out, "merged") as tmp:
        for i in range(3): (tmp / f"shard-{i}").write_bytes(b"old" * 1000)
    child = subprocess.Popen([sys.executable, "-c", _SWAP_CHILD, str(out), where], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == where
    child.send_signal(signal.SIGKILL); child.wait()
    assert child.returncode == -signal.SIGKILL
    def complete(d): return (d / OUTPUT_MARKER).is_file() and {p.read_bytes()[:3] for p in d.glob("shard-*")} in ({b"old"}, {b"new"})
    assert any(complete(d) for d in tmp_path.iterdir()), f"no complete folder on disk after a kill {where}: {list(tmp_path.iterdir())}"
    recover_dir(out)  # what the next atomic_dir, load_adapter or builtin_model on this folder does first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]
    assert complete(out) and {p.read_bytes()[:3] for p in out.glob("shard-*")} == {expect}
    assert len(list(out.glob("shard-*"))) == 3


def test_recover_leaves_a_live_process_build_alone(tmp_path):
    out = tmp_path / "merged"
    busy = tmp_path / f".merged.new-{os.getpid()}-abcdefgh"; busy.mkdir()  # this very process is building it
    recover_dir(out)
    assert busy.is_dir() and not out.exists()


def test_foreign_folders_are_refused_not_emptied(tmp_path, monkeypatch):
    mine = tmp_path / "thesis"; mine.mkdir(); (mine / "thesis.txt").write_text("x")
    with pytest.raises(FinetuneNBError, match="not empty and is not a merged folder made by finetune_nb"):
        with atomic_dir(mine, "merged") as tmp: (tmp / "w").write_bytes(b"1")
    assert (mine / "thesis.txt").read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]
    (tmp_path / "f").write_text("a file")
    with pytest.raises(FinetuneNBError, match="exists and is not a folder"): check_replaceable(tmp_path / "f", "merged")
    (tmp_path / "link").symlink_to(mine)
    with pytest.raises(FinetuneNBError, match="exists and is not a folder"): check_replaceable(tmp_path / "link", "merged")
    monkeypatch.chdir(mine)
    with pytest.raises(FinetuneNBError, match="current folder"): check_replaceable(tmp_path, "merged")
    with atomic_dir(tmp_path / "adapter", "adapter") as tmp: (tmp / "w").write_bytes(b"1")
    assert output_kind(tmp_path / "adapter") == "adapter"
    with pytest.raises(FinetuneNBError, match=r"\(it is a finetune_nb adapter folder\)"): check_replaceable(tmp_path / "adapter", "merged")
