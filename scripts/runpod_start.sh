#!/usr/bin/env bash
# Start a finetune_nb job on a GPU box (RunPod, a cloud VM, your own machine).
#
#   bash runpod_start.sh CONFIG.yaml [finetune-nb run options]     # the whole pipeline from a config
#   bash runpod_start.sh NOTEBOOK.ipynb [-p NAME VALUE ...]          # a workflow notebook through papermill
#
# Secrets come from the environment (RunPod: Secrets / environment variables), never from
# arguments: HF_TOKEN for gated hub models, ANTHROPIC_API_KEY for QA generation.
# Everything the job writes (runs, executed notebooks, logs, caches) stays under $WORKSPACE,
# the volume that survives the pod.
set -euo pipefail

WORKSPACE="${WORKSPACE:-/workspace}"
TARGET="${1:?usage: runpod_start.sh CONFIG.yaml|NOTEBOOK.ipynb [options]}"
shift
TARGET="$(cd "$(dirname "$TARGET")" && pwd)/$(basename "$TARGET")"

mkdir -p "$WORKSPACE/outputs/logs" "$WORKSPACE/.cache"
export HF_HOME="${HF_HOME:-$WORKSPACE/.cache/huggingface}"
export FINETUNE_NB_CACHE="${FINETUNE_NB_CACHE:-$WORKSPACE/.cache/finetune_nb}"
export PYTHONUNBUFFERED=1

# Install once per pod. GPU images ship their own CUDA torch: the package asks only for a range, so pip keeps it.
if ! python3 -c "import finetune_nb" 2>/dev/null; then
  python3 -m pip install "${FINETUNE_NB_SPEC:-finetune-nb[qlora]}"
fi

[ -n "${HF_TOKEN:-}" ] && echo "HF_TOKEN is set (used by huggingface_hub; never written to outputs)"
[ -n "${ANTHROPIC_API_KEY:-}" ] && echo "ANTHROPIC_API_KEY is set (read from the environment only)"
python3 -c "import torch; print('CUDA:', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

stamp="$(date +%Y%m%d-%H%M%S)"
name="$(basename "${TARGET%.*}")"
log="$WORKSPACE/outputs/logs/$name-$stamp.log"
cd "$WORKSPACE"
case "$TARGET" in
  *.ipynb) finetune-nb run-notebook "$TARGET" -o "$WORKSPACE/outputs/$name-$stamp.ipynb" "$@" 2>&1 | tee "$log" ;;
  *.yaml|*.yml) finetune-nb run "$TARGET" "$@" 2>&1 | tee "$log" ;;
  *) echo "runpod_start.sh: expected a .yaml config or an .ipynb notebook, got $TARGET" >&2; exit 2 ;;
esac
echo "outputs are under $WORKSPACE (log: $log)"
