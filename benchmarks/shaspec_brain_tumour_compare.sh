#!/bin/bash
# ShaSpec vs zero-filling on the synthetic brain-tumour set, CPU-sized (issue 4 closing note).
# 30 cases at 4 mm (40×49×42), 2-D slice-wise 48×48 patches, encoders [8, 16, 32, 64], batch 8, 300 steps,
# seeds 0 and 1; all 15 modality subsets on the 6 test cases of each seed; compare pooled over seeds.
# Usage: benchmarks/shaspec_brain_tumour_compare.sh [WORK_DIR]   (~35 min on 2 shared CPU cores)
set -e
CONFIGS=$(cd "$(dirname "$0")/../configs" && pwd)
WORK=${1:-work_shaspec}
mkdir -p "$WORK" && cd "$WORK"
export OMP_NUM_THREADS=1
python -c "from medgap.data.synthetic import generate; generate('brain-tumour', 'data/brain_tumour_4mm', cases=30, seed=0, test_cases=0, spacing=4.0, exist_ok=True)"
COMMON="data.dataset_dir=data/brain_tumour_4mm data.patch_size=[48,48] model.features=[8,16,32,64]
  data.labelled_batch_size=8 data.val_fraction=0.1 data.test_fraction=0.2 data.num_workers=1
  data.foreground_probability=0.5 data.augmentation.flip_axes=[0,1] trainer.max_steps=300 trainer.val_every=100
  trainer.checkpoint_every=100 trainer.val_max_cases=3 trainer.progress=false inference.sw_batch_size=16"
for seed in 0 1; do
  for method in shaspec zerofill; do
    medgap train "$CONFIGS/${method}_brain_tumour.yaml" $COMMON trainer.seed=$seed --run-dir runs/bt_${method}_s${seed} --overwrite
    medgap evaluate runs/bt_${method}_s${seed} --modality-subsets all
  done
done
medgap compare runs/bt_shaspec_s0 runs/bt_shaspec_s1 runs/bt_zerofill_s0 runs/bt_zerofill_s1 --out runs/bt_compare
