"""One training step of every method: milliseconds per step, peak memory and parameters, at the official shapes
and at our CPU defaults.

Each row is a method as ``medgap train`` builds it: ``load_config(configs/<x>.yaml, overrides)`` →
``build_method`` → optimiser of the config, set up by Lightning Fabric (device, precision) like the generic loop;
a step is ``training_step`` (every loss term of the method: λ > 0, an EMA teacher, a filled SS-Net memory) +
``fabric.backward`` + gradient clipping (when the config clips) + ``optimizer.step`` + scheduler +
``on_after_optimizer_step``. Batches are random tensors shaped like the loader's (image ``(B, C, *patch)``,
label indices with one box per class, ``labelled`` mask, availability, case ids, and reports/genetics of a tiny
generated data set where the method reads them).

Each row runs in its own (forked) process, so its memory is its own:
- CPU: peak resident set of the process (``ru_maxrss``) and its growth over the process after model, optimiser
  and batch were built ("+steps");
- CUDA: ``torch.cuda.max_memory_allocated`` (tensors; nvidia-smi adds the CUDA context) and its growth over the
  memory allocated before the first step.
Timing: warm-up steps (≥ 1, or 3 when compiled; until 1 s has passed, at most 5), then timed steps until
``--min-steps`` are done and ``--budget-s`` has passed, or ``--max-steps``; the median is reported (the mean is
kept in the JSON). One torch thread by default (``--threads``): on a shared machine more threads than idle cores
make small steps many times slower. Both
semi-supervised families also get the supervised step at the same shapes (lower bound: the labelled images
only; upper bound: as many labelled images as SS-Net sees), so the tables show SS-Net's cost as a ratio
measured within one run. ShaSpec classification at batch 4 is compared with the paper's computational table.

Official-shape rows that take minutes per step on a CPU are skipped by default (the table says why and shows
the last measurement, if any, with its date); ``--full`` runs them, ``--rows KEY ...`` runs a selection.

SS-Net's ratio is taken on process CPU time per step on the CPU (one thread: the work done; wall time on a shared
machine also counts other tenants), ``--repeats N`` runs the chosen rows N times in rotation and pools their steps;
a row with ``method.max_voxels`` also reports how far its prototype loss and gradients are from all voxels'.

Run: ``python benchmarks/bench_train_step.py [--full | --rows la/ss_net/official ...] [--device cuda
--precision bf16-mixed --compile] [--threads N]``; prints Markdown tables and writes
``benchmarks/results/bench_train_step.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import current_rss_mib, machine_info, markdown_table, peak_rss_mib, utc_now  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_train_step.json"

# ShaSpec (CVPR 2023) computational comparison, AV-MNIST, one RTX 3090, batch 4, mean of 30 iterations.
SHASPEC_PAPER = {"train_s": 0.0257, "test_s": 0.0016, "memory_mib": 1421.0, "parameters_m": 0.22,
                 "device": "RTX 3090 (paper)"}

# Where a row's dataset.json (and, for ContIG / AMVLM, its genetics / reports) comes from: a generator and cases.
DATASETS = {"brain-tumour": 2, "atrium-3d": 2, "cardiac-2d": 2, "digits-av": 2, "fundus-genetics": 48,
            "chest-xray-text": 24}


@dataclass(frozen=True)
class Row:
    key: str                     # family/dataset/scale, unique
    method: str                  # as shown
    config: str                  # configs/<config>.yaml
    dataset: str                 # a key of DATASETS
    scale: str                   # "CPU" (what we train on CPU) or "official" (the paper's shapes)
    overrides: dict = field(default_factory=dict)
    skip: str = ""               # why the row is not run by default ("" = it is)
    note: str = ""
    test_iterations: bool = False  # also time ``predict_logits`` (the paper's test iteration)


LA_CPU = {"data.patch_size": [48, 48, 32], "model.features": [8, 16, 32, 64, 128]}  # CPU-sized miniature
LA_SKIP = "SS-Net ~2 min/step, 14 GiB"
ACDC_CPU = {"data.patch_size": [48, 48]}  # CPU-sized miniature (the configs: the synthetic set's 128² slices)
ACDC_OFFICIAL = {"data.patch_size": [256, 256]}
ACDC_SKIP = "SS-Net ~1 min/step"
AMVLM_PAPER_TOKENS = {"data.patch_size": [224, 224], "method.vit_patch_size": 16, "data.labelled_batch_size": 32}
# ViT-B/16 image encoder; a BERT-base-sized text transformer trained from scratch stands in for Bio_ClinicalBERT.
AMVLM_OFFICIAL = {**AMVLM_PAPER_TOKENS, "method.vit_width": 768, "method.vit_depth": 12, "method.vit_heads": 12,
                  "method.text_width": 768, "method.text_depth": 12, "method.text_heads": 12,
                  "method.embed_dim": 128, "method.projection_hidden": 2048}
SSMIS_ENCODER = {"method.pretrained_run": ""}  # untrained encoders (the same modules as a pretraining run's)
# The supervised U-Net of `medgap reproduce amvlm --budget small` on every label (its calibration run, issue 23).
CHEST_UNET_SMALL = {"data.labelled_ratio": 1.0, "data.labelled_batch_size": 4, "data.unlabelled_batch_size": 0}

ROWS = [
    # semi-supervised, 3-D left atrium (V-Net, batch 2 labelled + 2 unlabelled)
    Row("la/supervised_2/cpu", "supervised (lower bound)", "supervised_lower_atrium3d", "atrium-3d", "CPU", LA_CPU),
    Row("la/supervised_4/cpu", "supervised (upper bound)", "supervised_upper_atrium3d", "atrium-3d", "CPU", LA_CPU),
    Row("la/mean_teacher/cpu", "Mean Teacher", "mean_teacher_atrium3d", "atrium-3d", "CPU", LA_CPU),
    Row("la/ss_net/cpu", "SS-Net", "ss_net_atrium3d", "atrium-3d", "CPU", LA_CPU),
    Row("la/ss_net_capped/cpu", "SS-Net (max_voxels)", "ss_net_atrium3d", "atrium-3d", "CPU",
        {**LA_CPU, "method.max_voxels": 16384}, note="prototype loss on 16,384 of 147,456 voxels per stream"),
    Row("la/supervised_2/official", "supervised (lower bound)", "supervised_lower_atrium3d", "atrium-3d", "official",
        skip=LA_SKIP),
    Row("la/supervised_4/official", "supervised (upper bound)", "supervised_upper_atrium3d", "atrium-3d", "official",
        skip=LA_SKIP),
    Row("la/mean_teacher/official", "Mean Teacher", "mean_teacher_atrium3d", "atrium-3d", "official", skip=LA_SKIP),
    Row("la/ss_net/official", "SS-Net", "ss_net_atrium3d", "atrium-3d", "official", skip=LA_SKIP),
    Row("la/ss_net_capped/official", "SS-Net (max_voxels)", "ss_net_atrium3d", "atrium-3d", "official",
        {"method.max_voxels": 65536}, skip=LA_SKIP, note="prototype loss on 65,536 voxels per stream"),
    # semi-supervised, 2-D cardiac (U-Net, 12 + 12)
    Row("acdc/supervised_12/cpu", "supervised (lower bound)", "supervised_lower_cardiac2d", "cardiac-2d", "CPU",
        ACDC_CPU),
    Row("acdc/supervised_24/cpu", "supervised (upper bound)", "supervised_upper_cardiac2d", "cardiac-2d", "CPU",
        ACDC_CPU),
    Row("acdc/mean_teacher/cpu", "Mean Teacher", "mean_teacher_cardiac2d", "cardiac-2d", "CPU", ACDC_CPU),
    Row("acdc/ss_net/cpu", "SS-Net", "ss_net_cardiac2d", "cardiac-2d", "CPU", ACDC_CPU),
    Row("acdc/supervised_12/official", "supervised (lower bound)", "supervised_lower_cardiac2d", "cardiac-2d",
        "official", ACDC_OFFICIAL, skip=ACDC_SKIP),
    Row("acdc/supervised_24/official", "supervised (upper bound)", "supervised_upper_cardiac2d", "cardiac-2d",
        "official", ACDC_OFFICIAL, skip=ACDC_SKIP),
    Row("acdc/mean_teacher/official", "Mean Teacher", "mean_teacher_cardiac2d", "cardiac-2d", "official",
        ACDC_OFFICIAL, skip=ACDC_SKIP),
    Row("acdc/ss_net/official", "SS-Net", "ss_net_cardiac2d", "cardiac-2d", "official", ACDC_OFFICIAL,
        skip=ACDC_SKIP),
    # missing modalities, brain tumour (4 MRI sequences, WT/TC/ET)
    Row("brats/supervised/cpu", "supervised", "supervised_brain_tumour", "brain-tumour", "CPU"),
    Row("brats/shaspec/cpu", "ShaSpec seg", "shaspec_brain_tumour", "brain-tumour", "CPU"),
    Row("brats/shaspec/official", "ShaSpec seg", "shaspec_brats_paper", "brain-tumour", "official",
        skip="minutes per step",
        note="encoder/decoder of medgap's U-Net, not the paper's 3-D ResNet"),
    # missing modalities, digits-av (image + spectrogram)
    Row("digits/shaspec_cls/paper", "ShaSpec cls", "shaspec_digits_av", "digits-av", "official",
        {"data.labelled_batch_size": 4}, test_iterations=True),
    Row("digits/shaspec_cls/cpu", "ShaSpec cls", "shaspec_digits_av", "digits-av", "CPU", test_iterations=True),
    # image-genetics pretraining (fundus)
    Row("fundus/contig/cpu", "ContIG (outer, all modalities)", "contig_fundus", "fundus-genetics", "CPU"),
    Row("fundus/contig_inner/cpu", "ContIG (inner)", "contig_fundus_inner", "fundus-genetics", "CPU"),
    Row("fundus/contig_pgs/cpu", "ContIG (PGS only)", "contig_fundus", "fundus-genetics", "CPU",
        {"method.modalities": ["pgs"]}),
    Row("fundus/simclr/cpu", "SimCLR (image only)", "simclr_fundus", "fundus-genetics", "CPU"),
    Row("fundus/contig/wide", "ContIG (outer, all modalities)", "contig_fundus", "fundus-genetics", "CPU",
        {"method.backbone_widths": [32, 64, 128, 256], "method.stem_stride": 1},
        note="wide backbone: widths 32-256, stride-1 stem"),
    Row("fundus/contig/official", "ContIG (outer, all modalities)", "contig_fundus", "fundus-genetics", "official",
        {"data.patch_size": [448, 448], "method.backbone_widths": [64, 128, 256, 512], "method.backbone_blocks": 2,
         "method.projection_hidden": 2048},
        skip="64 images of 448²: too large for a shared CPU machine", note="ResNet-18-like stand-in for ResNet-50"),
    # vision-language (chest X-ray + report)
    Row("chest/amvlm/cpu", "AMVLM pretrain", "amvlm_chest", "chest-xray-text", "CPU"),
    Row("chest/amvlm_coarse/cpu", "AMVLM pretrain (coarse only)", "amvlm_chest", "chest-xray-text", "CPU",
        {"method.css": False, "method.pdt": False, "method.icl": False}),
    Row("chest/amvlm/paper_tokens", "AMVLM pretrain", "amvlm_chest", "chest-xray-text", "official",
        AMVLM_PAPER_TOKENS, note="paper's 196 patches x 20 words and batch; CPU-sized encoders"),
    Row("chest/amvlm/official", "AMVLM pretrain", "amvlm_chest", "chest-xray-text", "official", AMVLM_OFFICIAL,
        skip="minutes per step",
        note="ViT-B/16; text transformer of BERT-base size from scratch"),
    Row("chest/amvlm_ssmis/cpu", "AMVLM SSMIS", "amvlm_ssmis_chest", "chest-xray-text", "CPU", SSMIS_ENCODER),
    Row("chest/unet_small/cpu", "U-Net (all labels, batch 4)", "amvlm_unet_chest", "chest-xray-text", "CPU",
        CHEST_UNET_SMALL, note="the `small` budget's grid, 64²"),
    Row("chest/unet_small/96", "U-Net (all labels, batch 4)", "amvlm_unet_chest", "chest-xray-text", "CPU",
        {**CHEST_UNET_SMALL, "data.patch_size": [96, 96]}, note="the calibration's alternative grid, 96²"),
    Row("chest/amvlm_ssmis/official", "AMVLM SSMIS", "amvlm_ssmis_chest", "chest-xray-text", "official",
        {**SSMIS_ENCODER, "data.patch_size": [224, 224], "data.labelled_batch_size": 16,
         "data.unlabelled_batch_size": 16}, skip="~1 min/step",
        note="CPU-sized frozen encoders"),
]
ROWS_BY_KEY = {row.key: row for row in ROWS}
# SS-Net and Mean Teacher against the supervised steps at the same shapes: family → (prefix, lower, upper bound)
RATIO_FAMILIES = {"LA 3-D": ("la", "supervised_2", "supervised_4"),
                  "ACDC 2-D": ("acdc", "supervised_12", "supervised_24")}


# ----------------------------------------------------------------------------------------------- the worker


def row_config(row: Row, dataset_dir: Path):
    from medgap.config import load_config

    overrides = {"data.dataset_dir": str(dataset_dir), **row.overrides}
    return load_config(ROOT / "configs" / f"{row.config}.yaml", [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


def synthetic_batch(config, spec, dataset_dir: Path, generator: torch.Generator) -> dict:
    """A batch shaped like the loader's for ``config.data`` on the data set ``spec``."""
    from medgap.data.cases import discover_cases

    data, patch = config.data, list(config.data.patch_size)
    labelled, unlabelled = data.labelled_batch_size, data.unlabelled_batch_size
    size = labelled + unlabelled
    cases = discover_cases(dataset_dir, spec)
    chosen = [cases[i % len(cases)] for i in range(size)]
    channels = spec.num_channels
    image = torch.randn(size, channels, *patch, generator=generator)
    if data.normalisation == "none":  # 8-bit colour photographs (fundus), scaled by the method itself
        image = torch.rand(size, channels, *patch, generator=generator) * 255
    if spec.task == "classification":
        label = torch.randint(0, len(spec.classes), (size,), generator=generator)
    else:  # label indices: nested centred boxes, one per foreground label, each a little smaller
        label = torch.zeros(size, *patch, dtype=torch.long)
        classes = len(spec.label_values)
        for index in range(1, classes):
            box = tuple(slice(s * index // (2 * classes), s - s * index // (2 * classes)) for s in patch)
            label[(slice(None), *box)] = index
    availability = torch.ones(size, channels, dtype=torch.bool)
    sparse = getattr(config.method, "sparse_modalities", None)
    if sparse:  # SMIL-style: the last sample lacks the sparse modality (the paper's missing-spectrogram setting)
        availability[-1, [spec.channel_names.index(name) for name in sparse]] = False
    batch = {"image": image, "label": label, "availability": availability,
             "labelled": torch.arange(size) < labelled, "case": [case.case_id for case in chosen]}
    if spec.text:
        batch["text"] = [case.text_path.read_text(encoding="utf-8").strip() for case in chosen]
    return batch


def worker(key: str, dataset_dir: Path, options: dict) -> dict:
    from lightning_fabric import Fabric

    from medgap.data.dataset_json import load_dataset_json
    from medgap.methods import build_method
    from medgap.training.loop import optimisation_step
    from medgap.training.schedules import build_optimizer, build_scheduler

    row = ROWS_BY_KEY[key]
    if options["threads"]:
        torch.set_num_threads(options["threads"])
    config = row_config(row, dataset_dir)
    spec = load_dataset_json(dataset_dir)
    fabric = Fabric(accelerator=options["device"], devices=1, precision=options["precision"])
    torch.manual_seed(0)
    method = build_method(config, spec)
    trainable = [p for p in method.parameters() if p.requires_grad]
    optimizer = build_optimizer(trainable, config.optim)
    scheduler = build_scheduler(optimizer, config.optim, config.trainer.max_steps)
    model, optimizer = fabric.setup(method, optimizer)
    # One device: Fabric's precision is its autocast context (the loop gets it through mark_forward_method, which
    # a compiled function cannot take).
    training_step = torch.compile(method.training_step) if options["compile"] else method.training_step
    batch = fabric.to_device(synthetic_batch(config, spec, dataset_dir, torch.Generator().manual_seed(0)))
    cuda = fabric.device.type == "cuda"
    synchronise = (lambda: torch.cuda.synchronize(fabric.device)) if cuda else (lambda: None)
    first_step = config.trainer.max_steps // 2  # ramps are up: every loss term of the method is computed
    counter = [first_step]

    def train_step():
        with fabric.autocast():
            output = training_step(batch, counter[0])
        optimisation_step(fabric, model, optimizer, scheduler, output.loss, config.optim.grad_clip)
        method.on_after_optimizer_step(counter[0])
        counter[0] += 1

    def test_step():
        with torch.inference_mode(), fabric.autocast():
            method.predict_logits(batch["image"], batch["availability"])

    method.train()
    if cuda:
        torch.cuda.reset_peak_memory_stats(fabric.device)
    before = torch.cuda.memory_allocated(fabric.device) / 2**20 if cuda else current_rss_mib()
    cpu_times: list[float] = []
    warmup, train_times = timed(train_step, synchronise, options, cpu_times)
    result = {"key": key, "method": row.method, "config": f"configs/{row.config}.yaml", "scale": row.scale,
              "overrides": row.overrides, "patch_size": list(config.data.patch_size),
              "batch": f"{config.data.labelled_batch_size}+{config.data.unlabelled_batch_size}"
              if config.data.unlabelled_batch_size else str(config.data.labelled_batch_size),
              "images_per_step": config.data.labelled_batch_size + config.data.unlabelled_batch_size,
              "model": describe_model(config), "warmup_steps": warmup, "steps_timed": len(train_times),
              "step_ms_median": 1e3 * statistics.median(train_times),
              "step_ms_mean": 1e3 * statistics.mean(train_times), "step_ms_all": [1e3 * t for t in train_times],
              "step_cpu_ms_median": 1e3 * statistics.median(cpu_times), "step_cpu_ms_all": [1e3 * t for t in cpu_times],
              "parameters": sum(p.numel() for p in method.parameters()),
              "trainable_parameters": sum(p.numel() for p in trainable),
              "device": torch.cuda.get_device_name(fabric.device) if cuda else "cpu",
              "precision": options["precision"], "compile": options["compile"], "threads": torch.get_num_threads()}
    if cuda:
        peak = torch.cuda.max_memory_allocated(fabric.device) / 2**20
        result.update(peak_mib=peak, step_growth_mib=peak - before, memory_kind="torch.cuda.max_memory_allocated")
    else:
        peak = peak_rss_mib()
        result.update(peak_mib=peak, step_growth_mib=peak - before, memory_kind="process peak RSS (ru_maxrss)")
    if getattr(config.method, "max_voxels", None):
        draws = 3 if row.scale == "official" else 5
        result["prototype_sampling"] = prototype_sampling_error(method, batch, draws)
    if row.test_iterations:
        method.eval()
        _, test_times = timed(test_step, synchronise, {**options, "min_steps": max(options["min_steps"], 30)})
        result.update(test_ms_median=1e3 * statistics.median(test_times),
                      test_ms_mean=1e3 * statistics.mean(test_times), test_steps_timed=len(test_times))
    return result


def prototype_sampling_error(method, batch: dict, draws: int) -> dict:
    """SS-Net's L_cl on ``max_voxels`` sampled voxels per stream against all voxels (the paper's and the default),
    at the benchmark's batch and the weights and memory its steps left: the relative error of L_cl_l + L_cl_u and
    the cosine between the gradients it gives the V-Net's parameters and the heads' (projection, prediction),
    over ``draws`` samples. The network runs in eval mode (no dropout: the same features every time); the heads
    normalise with batch statistics as in training."""
    import copy

    def contrastive(max_voxels):
        trial = copy.deepcopy(method)  # every call updates the memory
        trial.train()
        trial.net.eval()
        trial.config.max_voxels = max_voxels
        logits, features = trial.net.forward_features(batch["image"])
        loss_l, loss_u = trial.contrastive_losses(features, torch.softmax(logits.detach(), 1), batch["label"],
                                                  batch["labelled"])
        (loss_l + loss_u).backward()
        flat = lambda modules: torch.cat([torch.zeros(p.numel()) if p.grad is None else p.grad.flatten()  # noqa: E731
                                          for m in modules for p in m.parameters()])  # (the output conv gets none)
        return float(loss_l + loss_u), flat([trial.net]), flat([trial.projection, trial.prediction])

    exact_loss, exact_net, exact_heads = contrastive(None)
    errors, net_cosines, head_cosines = [], [], []
    for _ in range(draws):
        loss, net, heads = contrastive(method.config.max_voxels)
        errors.append(abs(loss - exact_loss) / abs(exact_loss))
        net_cosines.append(float(torch.nn.functional.cosine_similarity(net, exact_net, dim=0)))
        head_cosines.append(float(torch.nn.functional.cosine_similarity(heads, exact_heads, dim=0)))
    return {"draws": draws, "max_voxels": method.config.max_voxels, "exact_loss": exact_loss,
            "loss_relative_error_mean": statistics.mean(errors), "loss_relative_error_max": max(errors),
            "net_gradient_cosine_mean": statistics.mean(net_cosines), "net_gradient_cosine_min": min(net_cosines),
            "head_gradient_cosine_mean": statistics.mean(head_cosines)}


def describe_model(config) -> str:
    method = config.method
    if hasattr(method, "backbone_widths"):
        return f"ResNet {method.backbone_widths}x{getattr(method, 'backbone_blocks', 1)}, stem /{method.stem_stride}"
    if method.name == "amvlm":
        return (f"ViT {method.vit_width}x{method.vit_depth} /{method.vit_patch_size}, "
                f"text {method.text_width}x{method.text_depth}")
    if method.name == "shaspec":
        return f"ShaSpec encoders {config.model.features}"
    return f"{config.model.arch} {config.model.features}"


def timed(function, synchronise, options: dict, cpu_times: list[float] | None = None) -> tuple[int, list[float]]:
    """Warm-up calls (≥ 1, until 1 s has passed, ≤ 5; ≥ 3 when compiled: the step index recompiles once), then
    timed calls: ``(warm-up count, seconds each)``; ``cpu_times`` receives each call's CPU seconds of this
    process (all its threads), which other tenants of a shared machine do not inflate as they do wall time."""
    least = 3 if options["compile"] else 1
    warmup, started = 0, time.perf_counter()
    while warmup < least or (warmup < 5 and time.perf_counter() - started < 1.0):
        function()
        warmup += 1
    synchronise()
    times: list[float] = []
    while len(times) < options["max_steps"] and (len(times) < options["min_steps"]
                                                 or sum(times) < options["budget_s"]):
        synchronise()
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        synchronise()
        times.append(time.perf_counter() - start)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - start_cpu)
    return warmup, times


# ----------------------------------------------------------------------------------------------- the driver


def measure(row: Row, dataset_dir: Path, args) -> dict:
    """One row in a child process of its own (its peak memory is its own). On the CPU the child is forked from
    this one after the heavy imports (torch, Lightning, MONAI: ~7 s per fresh interpreter), which saves minutes
    over the quick table; the parent has run no torch op, so the child starts clean and its peak resident set
    starts at the parent's (the same imports a fresh process would hold). On a GPU the child is spawned: CUDA
    cannot be used in a child forked from a process that has touched the driver (some import may have)."""
    options = {"threads": args.threads, "device": args.device, "precision": args.precision, "compile": args.compile,
               "min_steps": args.min_steps, "max_steps": args.max_steps, "budget_s": args.budget_s}
    context = multiprocessing.get_context("fork" if args.device == "cpu" else "spawn")
    receiver, sender = context.Pipe(duplex=False)
    started = time.perf_counter()
    child = context.Process(target=_forked_worker, args=(sender, row.key, dataset_dir, options), daemon=True)
    child.start()
    sender.close()
    result, answered = None, receiver.poll(args.timeout)  # also True when the child died (end of the pipe)
    if answered:
        try:
            result = receiver.recv()
        except EOFError:  # the child died before it could answer (killed for memory, a crash in native code)
            pass
    child.join(5)
    if child.is_alive():
        child.kill()
        child.join()
    if result is None:
        reason = f"exit status {child.exitcode} (killed?)" if answered else f"no result within {args.timeout:.0f} s"
        return {"key": row.key, "error": reason}
    result["wall_s"] = time.perf_counter() - started
    return result


def merge_repeats(earlier: dict, later: dict) -> dict:
    """One row measured in several repeats: step times pooled (median and mean over all), the highest peak memory,
    the mean load; a failed repeat fails the row."""
    if "error" in earlier or "error" in later:
        return earlier if "error" in earlier else later
    merged = {**earlier, "step_ms_all": earlier["step_ms_all"] + later["step_ms_all"],
              "repeats": earlier.get("repeats", 1) + 1,
              "load_average_1min": (earlier["load_average_1min"] + later["load_average_1min"]) / 2}
    if "step_cpu_ms_all" in earlier:
        merged["step_cpu_ms_all"] = earlier["step_cpu_ms_all"] + later["step_cpu_ms_all"]
        merged["step_cpu_ms_median"] = statistics.median(merged["step_cpu_ms_all"])
    merged.update(step_ms_median=statistics.median(merged["step_ms_all"]),
                  step_ms_mean=statistics.mean(merged["step_ms_all"]), steps_timed=len(merged["step_ms_all"]),
                  peak_mib=max(earlier["peak_mib"], later["peak_mib"]),
                  step_growth_mib=max(earlier["step_growth_mib"], later["step_growth_mib"]))
    return merged


def import_worker_modules(rows: list[Row]) -> None:
    """Import, once in the parent, what every forked row would otherwise import again."""
    import lightning_fabric  # noqa: F401

    import medgap.training.loop  # noqa: F401
    from medgap.config import load_config
    from medgap.methods import method_module

    for config in {row.config for row in rows}:
        method_module(load_config(ROOT / "configs" / f"{config}.yaml").method.name)


def _forked_worker(sender, key: str, dataset_dir: Path, options: dict) -> None:
    try:
        message = worker(key, dataset_dir, options)
    except Exception as error:  # reported as the row's error; the other rows go on
        message = {"key": key, "error": f"{type(error).__name__}: {error}"[:200]}
    sender.send(message)
    sender.close()


def chosen_rows(args) -> list[Row]:
    if args.rows:
        unknown = [key for key in args.rows if key not in ROWS_BY_KEY]
        if unknown:
            raise SystemExit(f"unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS_BY_KEY)}")
        return [ROWS_BY_KEY[key] for key in args.rows]
    return [row for row in ROWS if args.full or not row.skip]


def earlier_results(path: Path, device: str) -> dict[str, dict]:
    """Rows measured by earlier invocations on the same kind of device, by key (kept for rows not run now)."""
    if not path.is_file():
        return {}
    previous = json.loads(path.read_text())
    return {row["key"]: row for row in previous.get("rows", [])
            if "error" not in row and (row.get("device") == "cpu") == (device == "cpu")}


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}".replace(",", "")


def main_table(results: dict[str, dict]) -> str:
    header = ["method", "scale", "patch", "batch", "model", "ms/step", "images/s", "peak MiB", "+steps MiB",
              "params M (trainable)", "note"]
    rows = []
    for row in ROWS:
        result = results.get(row.key)
        note = row.note
        if result is None or "error" in result:
            reason = (f"failed: {result['error']}" if result else f"skipped by default ({row.skip}; `--full`)"
                      if row.skip else "not run")
            rows.append([row.method, row.scale, "", "", "", "–", "–", "–", "–", "–",
                         "; ".join(filter(None, [reason, note]))])
            continue
        if result.get("earlier"):
            when = f"measured {result['measured_at'][:10]}"
            if result.get("source"):
                when += f" by {Path(result['source'].split()[0]).name}"
            note = "; ".join(filter(None, [f"skipped by default ({row.skip}), {when}" if row.skip else when, note]))
        digits = 1 if result["step_ms_median"] < 100 else 0
        rate = 1e3 * result["images_per_step"] / result["step_ms_median"]
        params = result["trainable_parameters"] / 1e6
        total = result["parameters"] / 1e6
        rows.append([row.method, row.scale, "x".join(map(str, result["patch_size"])), result["batch"],
                     result["model"], fmt(result["step_ms_median"], digits),
                     fmt(rate, 1 if rate >= 1 else 2),
                     fmt(result["peak_mib"]), fmt(result["step_growth_mib"]),
                     f"{params:.3f}" if abs(params - total) < 1e-6 else f"{params:.3f} ({total:.3f} total)", note])
    return markdown_table(header, rows)


def ratio_table(results: dict[str, dict]) -> tuple[str, list[dict]]:
    """Mean Teacher and SS-Net step time over the supervised step at the same shapes (within one run); SS-Net with
    ``max_voxels`` too where it was measured."""
    rows, summary = [], []
    for family, (prefix, lower_bound, upper_bound) in RATIO_FAMILIES.items():
        for scale in ("cpu", "official"):
            keys = {name: f"{prefix}/{name}/{scale}" for name in ("mean_teacher", "ss_net")}
            lower, upper = f"{prefix}/{lower_bound}/{scale}", f"{prefix}/{upper_bound}/{scale}"
            if not all(k in results and "error" not in results[k] for k in (lower, upper, *keys.values())):
                continue
            capped = f"{prefix}/ss_net_capped/{scale}"
            if capped in results and "error" not in results[capped]:
                keys["ss_net_capped"] = capped
            measured = [results[k] for k in (lower, upper, *keys.values())]
            # On the CPU, ratios of process CPU time per step (single-threaded: the work done; wall time on a
            # shared machine also counts the other tenants' share of the cores); rows measured before that, wall.
            timing = "step_cpu_ms_median" if all("step_cpu_ms_median" in r for r in measured) else "step_ms_median"
            ms = {name: results[k][timing] for name, k in {"lower": lower, "upper": upper, **keys}.items()}
            entry = {"family": family, "scale": scale, "patch_size": results[keys["ss_net"]]["patch_size"],
                     "batch": results[keys["ss_net"]]["batch"], "ms": ms,
                     "timing": "CPU time" if timing == "step_cpu_ms_median" else "wall time",
                     "ss_net_vs_lower": ms["ss_net"] / ms["lower"], "ss_net_vs_upper": ms["ss_net"] / ms["upper"],
                     "mean_teacher_vs_lower": ms["mean_teacher"] / ms["lower"],
                     "ss_net_peak_vs_upper": results[keys["ss_net"]]["peak_mib"] / results[upper]["peak_mib"],
                     "earlier": any(results[k].get("earlier") for k in (lower, upper, *keys.values()))}
            if "ss_net_capped" in keys:
                entry.update(ss_net_capped_vs_upper=ms["ss_net_capped"] / ms["upper"],
                             ss_net_capped_peak_vs_upper=results[capped]["peak_mib"] / results[upper]["peak_mib"],
                             max_voxels=results[capped]["overrides"].get("method.max_voxels"))
            summary.append(entry)
            capped_cells = ([f"{entry['ss_net_capped_vs_upper']:.2f}x", f"{entry['ss_net_capped_peak_vs_upper']:.2f}x"]
                            if "ss_net_capped" in keys else ["–", "–"])
            rows.append([family, "x".join(map(str, entry["patch_size"])), entry["batch"], fmt(ms["lower"]),
                         fmt(ms["upper"]), fmt(ms["mean_teacher"]), fmt(ms["ss_net"]),
                         f"{entry['ss_net_vs_lower']:.2f}x", f"{entry['ss_net_vs_upper']:.2f}x",
                         f"{entry['mean_teacher_vs_lower']:.2f}x", f"{entry['ss_net_peak_vs_upper']:.2f}x",
                         *capped_cells, "; ".join(filter(None, [entry["timing"], "earlier runs (see above)"
                                                                 if entry["earlier"] else ""]))])
    header = ["family", "patch", "batch (SSL)", "supervised L ms", "supervised L+U ms", "Mean Teacher ms",
              "SS-Net ms", "SS-Net / sup. L", "SS-Net / sup. L+U", "MT / sup. L", "SS-Net / sup. L+U peak memory",
              "SS-Net max_voxels / sup. L+U", "its peak memory / sup. L+U", "note"]
    return markdown_table(header, rows), summary


def sampling_table(results: dict[str, dict]) -> str:
    """L_cl on a voxel sample against all voxels, per row that sets ``max_voxels``."""
    rows = []
    for row in ROWS:
        sampling = results.get(row.key, {}).get("prototype_sampling")
        if sampling:
            rows.append([row.key, fmt(sampling["max_voxels"]), sampling["draws"], f"{sampling['exact_loss']:.4f}",
                         f"{100 * sampling['loss_relative_error_mean']:.2f} % "
                         f"(max {100 * sampling['loss_relative_error_max']:.2f} %)",
                         f"{sampling['net_gradient_cosine_mean']:.3f} (min {sampling['net_gradient_cosine_min']:.3f})",
                         f"{sampling['head_gradient_cosine_mean']:.3f}"])
    header = ["row", "max_voxels per stream", "draws", "L_cl (all voxels)", "relative error of L_cl",
              "cosine of V-Net gradients", "cosine of head gradients"]
    return markdown_table(header, rows) if rows else ""


def shaspec_table(results: dict[str, dict]) -> tuple[str, dict | None]:
    result = results.get("digits/shaspec_cls/paper")
    if result is None or "error" in result:
        return "", None
    paper = SHASPEC_PAPER
    ours = {"train_s": result["step_ms_mean"] / 1e3, "test_s": result["test_ms_mean"] / 1e3,
            "memory_mib": result["peak_mib"], "step_growth_mib": result["step_growth_mib"],
            "parameters_m": result["parameters"] / 1e6, "device": result["device"], "threads": result["threads"],
            "memory_kind": result["memory_kind"]}
    threads = f"{ours['threads']} thread{'s' if ours['threads'] != 1 else ''}"
    device = f"{ours['device']} ({threads})" if ours["device"] == "cpu" else ours["device"]
    rows = [[paper["device"], f"{paper['train_s']:.4f}", f"{paper['test_s']:.4f}", fmt(paper["memory_mib"]), "",
             f"{paper['parameters_m']:.2f}"],
            [f"ours, {device}", f"{ours['train_s']:.4f}", f"{ours['test_s']:.4f}", fmt(ours["memory_mib"]),
             fmt(ours["step_growth_mib"]), f"{ours['parameters_m']:.3f}"],
            ["ours / paper", f"{ours['train_s'] / paper['train_s']:.2f}x", f"{ours['test_s'] / paper['test_s']:.2f}x",
             "", "", f"{ours['parameters_m'] / paper['parameters_m']:.2f}x"]]
    table = markdown_table(["ShaSpec cls, batch 4", "train s/iter (mean)", "test s/iter (mean)", "memory MiB",
                            "+steps MiB", "params M"], rows)
    return table, {"paper": paper, "ours": ours}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also the official-shape rows skipped by default")
    parser.add_argument("--rows", nargs="+", help=f"row keys to run (default: every row not skipped); "
                                                  f"known: {' '.join(ROWS_BY_KEY)}")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (Fabric accelerator)")
    parser.add_argument("--precision", default="32-true", help="Fabric precision, e.g. bf16-mixed, 16-mixed")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine, more threads than idle cores make "
                             "small steps many times slower; 0 = torch's default)")
    parser.add_argument("--min-steps", type=int, default=None, help="timed steps at least (default 2; --full 5)")
    parser.add_argument("--max-steps", type=int, default=30, help="timed steps at most")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="keep timing until this many seconds have passed (default 3; --full 20)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the chosen rows this many times in rotation and pool their step times, so that "
                             "ratios between rows are taken under the same load (default 1)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per row")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON (default results/bench_train_step.json on the CPU in fp32, else "
                             "bench_train_step_<device>_<precision>[_compiled].json: one file per setting)")
    args = parser.parse_args(argv)
    if args.out is None:
        plain = args.device == "cpu" and args.precision == "32-true" and not args.compile
        args.out = RESULTS if plain else RESULTS.with_name(
            f"bench_train_step_{args.device.split(':')[0]}_{args.precision}{'_compiled' if args.compile else ''}.json")
    args.min_steps = args.min_steps or (5 if args.full else 2)
    args.budget_s = args.budget_s if args.budget_s is not None else (20.0 if args.full else 3.0)
    from medgap.atomic import write_json
    from medgap.data.synthetic import generate

    rows = chosen_rows(args)
    import_worker_modules(rows)
    started = time.perf_counter()
    results = earlier_results(args.out, args.device)
    for result in results.values():
        result["earlier"] = True
    measured_at = utc_now()
    with tempfile.TemporaryDirectory() as tmp:
        datasets = {}
        for row in rows:
            if row.dataset not in datasets:
                datasets[row.dataset] = generate(row.dataset, Path(tmp) / row.dataset, cases=DATASETS[row.dataset],
                                                 seed=0, test_cases=0)
        for repeat in range(args.repeats):  # rows in rotation: each repeat's rows share the machine's load
            for row in rows:
                result = measure(row, datasets[row.dataset], args)
                result.update(measured_at=measured_at, load_average_1min=os.getloadavg()[0])
                results[row.key] = merge_repeats(results[row.key], result) if repeat else result
                shown = result.get("error") or f"{result['step_ms_median']:.0f} ms/step, {result['steps_timed']} timed"
                print(f"{row.key}: {shown}", file=sys.stderr, flush=True)
    table = main_table(results)
    ratios, ratio_summary = ratio_table(results)
    shaspec, shaspec_summary = shaspec_table(results)
    sampling = sampling_table(results)
    device = results.get(rows[0].key, {}).get("device", args.device) if rows else args.device
    title = (f"Training step per method ({device}, precision {args.precision}"
             f"{', compiled' if args.compile else ''}); median ms per step")
    markdown = "\n\n".join(filter(None, [
        f"{title}\n\n{table}",
        f"Semi-supervised methods over the supervised step at the same shapes (L = labelled images per step, "
        f"U = unlabelled):\n\n{ratios}" if ratio_summary else "",
        f"SS-Net's prototype loss on a voxel sample (`method.max_voxels`) against all voxels (the default), at the "
        f"benchmark batch, mean over draws:\n\n{sampling}" if sampling else "",
        f"ShaSpec classification vs the paper's computational comparison:\n\n{shaspec}" if shaspec else ""]))
    print(markdown)
    failed = [key for key in (row.key for row in rows) if "error" in results[key]]
    write_json(args.out, {
        "benchmark": "bench_train_step", "machine": machine_info(), "device": args.device,
        "precision": args.precision, "compile": args.compile, "threads": args.threads or torch.get_num_threads(),
        "mode": "rows" if args.rows else ("full" if args.full else "quick"),
        "min_steps": args.min_steps, "max_steps": args.max_steps, "budget_s": args.budget_s, "repeats": args.repeats,
        "rows": [results[row.key] for row in ROWS if row.key in results],
        "ssnet_vs_supervised": ratio_summary, "shaspec_cls_vs_paper": shaspec_summary,
        "seconds": time.perf_counter() - started, "failed": failed, "table_markdown": markdown})
    print(f"wrote {args.out} ({time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
