#!/bin/bash
# ShaSpec vs zero-filling on digits-av with SMIL-style spectrogram ratios 0.1 / 0.2 / 1.0 (seed 0, 600 steps of 32,
# ≈ 16 epochs; paper optimiser: Adam, wd 1e-2, LR 1e-3 × 0.9 every 20 epochs — no decay within 600 steps).
# Usage: benchmarks/shaspec_digits_av_ratios.sh [WORK_DIR]   (~40 min on 2 shared CPU cores)
set -e
CONFIGS=$(cd "$(dirname "$0")/../configs" && pwd)
WORK=${1:-work_shaspec}
mkdir -p "$WORK" && cd "$WORK"
export OMP_NUM_THREADS=1
medgap synth digits-av data/digits_av --seed 0 --exist-ok
for ratio in 0.1 0.2 1.0; do
  for method in shaspec zerofill; do
    medgap train "$CONFIGS/${method}_digits_av.yaml" data.dataset_dir=data/digits_av method.sparse_keep_ratio=$ratio \
      trainer.max_steps=600 trainer.val_every=100 trainer.checkpoint_every=100 trainer.progress=false \
      --run-dir runs/digits_${method}_r${ratio} --overwrite
    medgap evaluate runs/digits_${method}_r${ratio} --modality-subsets all
  done
  medgap compare runs/digits_shaspec_r${ratio} runs/digits_zerofill_r${ratio} --out runs/digits_compare_r${ratio}
done
