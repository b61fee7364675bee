#!/usr/bin/env bash
# GPU check of distributed extraction and training (CUDA, NCCL, mixed precision).
#
# Runs, on every visible GPU (N = nvidia-smi count, or the first argument):
#   1. single-process extraction of all-minilm-l6-v2 on Rotten Tomatoes (train split) on cuda:0;
#   2. the same extraction with torchrun --nproc_per_node=N into another cache folder, then a byte
#      comparison of the two banks (the GPU kernels must give the same bytes for the same batches);
#   3. a short AFT training on N GPUs (DDP over NCCL, bf16/fp16 autocast) with the local kernel,
#      then with --global-kernel, recording steps/s from metrics.jsonl.
# Writes a JSON summary to $OUT/gpu_check.json (default OUT=benchmarks/results/gpu_check).
# Usage:  bash benchmarks/perf/gpu_check.sh [N]
set -euo pipefail

N="${1:-$(nvidia-smi -L 2>/dev/null | wc -l)}"
[ "$N" -ge 1 ] || { echo "no CUDA device found (nvidia-smi lists none)" >&2; exit 2; }
PY="${PYTHON:-.venv/bin/python}"
OUT="${OUT:-benchmarks/results/gpu_check}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
TEACHER=all-minilm-l6-v2
COMMON=(extract -d rotten_tomatoes -t "$TEACHER" -b 64 --chunk-rows 512 --device cuda --no-progress)

t0=$(date +%s.%N)
"$PY" -m fusion_aft.cli "${COMMON[@]}" --cache-dir "$WORK/single"
t1=$(date +%s.%N)
"$PY" -m torch.distributed.run --standalone --nproc_per_node="$N" -m fusion_aft.cli "${COMMON[@]}" \
    --cache-dir "$WORK/dist"
t2=$(date +%s.%N)

same=true
for f in features.npy ids.npy digests.npy; do
    cmp -s "$(find "$WORK/single" -name "$f")" "$(find "$WORK/dist" -name "$f")" || same=false
done

TRAIN=(train --dataset rotten_tomatoes --student text_cnn --teachers "$TEACHER" --method aft --beta 1
       --n-labels 2048 --steps 300 --batch-size 128 --device cuda --amp --no-progress
       --cache-dir "$WORK/dist" --json)
"$PY" -m torch.distributed.run --standalone --nproc_per_node="$N" -m fusion_aft.cli "${TRAIN[@]}" \
    --out "$WORK/run-local" > "$WORK/local.json"
"$PY" -m torch.distributed.run --standalone --nproc_per_node="$N" -m fusion_aft.cli "${TRAIN[@]}" \
    --global-kernel --out "$WORK/run-global" > "$WORK/global.json"

"$PY" - "$WORK" "$OUT" "$N" "$same" "$t0" "$t1" "$t2" <<'PYEOF'
import json, sys
from pathlib import Path
import torch
work, out, n, same, t0, t1, t2 = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], *map(float, sys.argv[5:])
rows = json.loads((next(work.glob("single/*/*/manifest.json"))).read_text())["shape"][0]

def steps_per_s(run):
    recs = [json.loads(l) for l in (work / run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["phase"] == "train"]
    first, last = train[0], train[-1]
    return (last["step"] - first["step"]) / max(last["elapsed_s"] - first["elapsed_s"], 1e-9)

summary = {
    "device": torch.cuda.get_device_name(0), "gpus": n, "teacher": "all-minilm-l6-v2", "rows": rows,
    "extract_rows_per_s_1gpu": rows / (t1 - t0), f"extract_rows_per_s_{n}gpu": rows / (t2 - t1),
    "banks_byte_identical": same == "true",
    "train_local_kernel": {**json.loads((work / "local.json").read_text()), "steps_per_s": steps_per_s("run-local")},
    "train_global_kernel": {**json.loads((work / "global.json").read_text()), "steps_per_s": steps_per_s("run-global")},
    "note": "extraction times include loading the teacher and the data; training with bf16/fp16 autocast",
}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
if not summary["banks_byte_identical"]:
    sys.exit("the distributed bank differs from the single-process bank")
PYEOF
