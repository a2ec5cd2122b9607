#!/usr/bin/env bash
# GPU proof (issue 18), on the lent GPU machine. What that machine lacks travels in bundles made by
# scripts/gpu_pack.py (.gpu/1, .gpu/2, ...: wheels first, then the real model's GGUF in chunks), one bundle a
# device call (`carry: [".gpu/K"]`). Each call adds its bundle to /root/gpu-stage, which lasts while the
# machine stays warm, installs every wheel staged so far, joins the GGUF once all its chunks are there, and runs
# the parts not yet done whose needs are met: bundle 1 runs lora_sdpa, lora_flash and stack (about 5 minutes);
# the call that brings the last bundle runs real. Figures: one JSON line per part, also in $OUT/gpu_proof.jsonl.
#   call 1: bash benchmarks/gpu_proof.sh                 (carry .gpu/1, timeout_s 480)
#   call K: bash benchmarks/gpu_proof.sh                 (carry .gpu/K, at once, while the machine is warm)
set -uo pipefail
cd "$(dirname "$0")/.."
stage=/root/gpu-stage; mkdir -p "$stage/wheels" "$stage/model"
for d in .gpu/*/; do
  [ -d "$d" ] || continue
  cp -n "$d"*.whl "$stage/wheels/" 2>/dev/null; cp -n "$d"model.* "$stage/model/" 2>/dev/null
done
if ls "$stage"/wheels/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$stage"/wheels/*.whl || exit 1
fi
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
gguf=""
if [ -f "$stage/model/model.json" ]; then
  read -r name parts sha < <(python3 -c "import json;m=json.load(open('$stage/model/model.json'));print(m['name'],m['parts'],m['sha256'])")
  have=$(ls "$stage"/model/model.gguf.part* 2>/dev/null | wc -l)
  if [ "$have" -eq "$parts" ]; then
    cat "$stage"/model/model.gguf.part* > "$stage/$name"
    [ "$(sha256sum "$stage/$name" | cut -d' ' -f1)" == "$sha" ] && gguf="$stage/$name" || echo "{\"part\": \"real\", \"error\": \"joined GGUF fails its sha256\"}"
  fi
fi
todo=()
for p in lora_sdpa lora_flash stack; do [ -f "$stage/done.$p" ] || todo+=("$p"); done
[ -n "$gguf" ] && [ ! -f "$stage/done.real" ] && todo+=(real)
[ ${#todo[@]} -eq 0 ] && { echo '{"part": "none", "note": "every part whose needs are staged is done"}'; exit 0; }
parts=$(IFS=,; echo "${todo[*]}")
out="${OUT:-/tmp}/gpu_proof.jsonl"
python3 benchmarks/gpu_proof.py --parts "$parts" ${gguf:+--real-gguf "$gguf"} "$@" | tee -a "$out"
for p in "${todo[@]}"; do grep -q "\"part\": \"$p\"" "$out" && ! grep "\"part\": \"$p\"" "$out" | grep -q '"error"' && touch "$stage/done.$p"; done
exit 0
