#!/usr/bin/env bash
# The project's test command (README): notebooks clean, package in sync, docs build inputs, notebook tests, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export FINETUNE_NB_CACHE="${FINETUNE_NB_CACHE:-$(mktemp -d)}"
fail() { echo "FAILED: $*" >&2; exit 1; }
snapshot() { find "$@" -type f \( -name '*.ipynb' -o -name '*.py' \) -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum; }

echo "== nbdev-clean leaves the notebooks unchanged"
before=$(snapshot nbs); nbdev-clean; after=$(snapshot nbs)
[ "$before" == "$after" ] || { diff <(echo "$before") <(echo "$after") >&2 || true; fail "notebooks were not clean; nbdev-clean has now cleaned them: review and commit"; }

echo "== nbdev-export leaves the package unchanged (notebooks and library in sync)"
before=$(snapshot finetune_nb); nbdev-export; after=$(snapshot finetune_nb)
[ "$before" == "$after" ] || { diff <(echo "$before") <(echo "$after") >&2 || true; fail "finetune_nb/ was out of sync with nbs/; nbdev-export has now updated it: review and commit"; }

echo "== README.md matches nbs/index.ipynb; the docs pages process"
python scripts/make_readme.py --check
proc_log=$(mktemp); rm -rf _proc; nbdev-proc-nbs > "$proc_log" 2>&1 || { cat "$proc_log" >&2; fail "nbdev-proc-nbs"; }
if grep -E "Traceback|Error|Found cells containing imports" "$proc_log" | grep -v "sudo" >&2; then fail "nbdev-proc-nbs reported problems (log: $proc_log)"; fi
rm -rf _proc

echo "== nbdev-test (every notebook, skipping cells flagged: $(python -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["tool"]["nbdev"]["tst_flags"])'))"
nbdev-test --n-workers 2 ${NBDEV_TEST_FLAGS:+--flags "$NBDEV_TEST_FLAGS"}

echo "== pytest"
python -m pytest -q -p no:cacheprovider "$@"   # exit code 5 (no tests collected) fails here like any other
