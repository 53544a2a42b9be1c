"""``medgap <command>``: thin wrappers over the library functions.

A :class:`MedgapError` (bad input, bad config, run-folder conflict) is printed as one line and exits with 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from medgap import __version__
from medgap.data.convert import CONVERTERS, describe_options
from medgap.errors import MedgapError
from medgap.progress import progress_bar
from medgap.reproduce import BUDGETS, PAPERS  # the paper list (cheap: no torch, no paper modules)


def _console():
    from rich.console import Console

    return Console(stderr=True)


def cmd_synth(args) -> int:
    from medgap.data.synthetic import generate

    console = _console()
    with progress_bar(f"synth {args.name}", console) as bar:
        task = bar.add_task("synth", total=None)
        options = {} if args.difficulty is None else {"difficulty": args.difficulty}
        out = generate(args.name, args.out_dir, cases=args.cases, seed=args.seed, test_cases=args.test_cases,
                       exist_ok=args.exist_ok, progress=lambda done, total: bar.update(task, completed=done, total=total),
                       **options)
    print(f"wrote {out}")
    return 0


def cmd_verify(args) -> int:
    from medgap.data.verify import format_report, verify_dataset

    console = _console()
    with progress_bar("verify", console) as bar:
        task = bar.add_task("verify", total=None)
        report = verify_dataset(args.dataset_dir, max_bytes=int(args.max_image_mib * 2**20),
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
    print(format_report(report, first_problem_elsewhere=True))
    if report.ok:
        return 0
    more = f" (and {len(report.problems) - 1} more problem(s), listed above)" if len(report.problems) > 1 else ""
    print(f"error: {report.problems[0]}{more}", file=sys.stderr)
    return 2


def _load_config(args):
    from medgap.config import load_config

    overrides = list(args.overrides)
    for flag, key in (("devices", "trainer.devices"), ("num_nodes", "trainer.num_nodes"),
                      ("strategy", "trainer.strategy"), ("accelerator", "trainer.accelerator"),
                      ("precision", "trainer.precision")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    return load_config(args.config, overrides)


def cmd_train(args) -> int:
    config = _load_config(args)  # before importing torch: a config mistake is reported at once
    from medgap.training.loop import default_run_dir, train

    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
    summary = train(config, run_dir, resume=args.resume, overwrite=args.overwrite, console=_console())
    if summary is not None:
        name, best = next((k, v) for k, v in summary.items() if k.startswith("best_val_"))
        score = "no validation cases" if best is None else (
            f"best validation {name[9:]} {best:.4f} at step {summary['best_step']}")
        print(f"trained {summary['steps']} steps into {run_dir} ({score})")
    return 0


def cmd_evaluate(args) -> int:
    from medgap.evaluation.evaluate import evaluate_run
    from medgap.evaluation.subsets import evaluate_subsets

    console = _console()
    with progress_bar("evaluate", console) as bar:
        task = bar.add_task("evaluate", total=None)
        callback = lambda done, total: bar.update(task, completed=done, total=total)  # noqa: E731
        if args.modality_subsets:  # (evaluate_run scores a classification run per available subset itself)
            result = evaluate_subsets(args.run_dir, subsets=args.modality_subsets or "available", split=args.split,
                                      checkpoint=args.checkpoint, progress=callback)
        else:
            result = evaluate_run(args.run_dir, split=args.split, checkpoint=args.checkpoint, progress=callback)
    print(result["table"], end="")
    print(f"wrote {result['paths']['md']}")
    return 0


def cmd_score(args) -> int:
    from medgap.evaluation.score import score_folder

    console = _console()
    with progress_bar("score", console) as bar:
        task = bar.add_task("score", total=None)
        result = score_folder(args.prediction_dir, args.label_dir, args.dataset, out_dir=args.out,
                              hd95_definition=args.hd95_definition, empty_penalty=args.empty_penalty,
                              voxel_units_too=args.voxel_units_too,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    print(result["table"], end="")
    print(f"wrote {result['paths']['md']}")
    return 0


def cmd_compare(args) -> int:
    from medgap.evaluation.subsets import compare_runs

    labels = args.labels.split(",") if args.labels else None
    result = compare_runs(args.run_dirs, args.out, subsets=args.modality_subsets, split=args.split,
                          checkpoint=args.checkpoint, labels=labels, reuse=not args.fresh)
    print(result["table"], end="")
    print(f"wrote {result['path']}")
    return 0


def cmd_predict(args) -> int:
    from medgap.data.dataset_json import load_dataset_json
    from medgap.evaluation.evaluate import load_run_config, load_trained_method
    from medgap.inference.predict import predict_folder

    config = load_run_config(args.run_dir)
    spec = load_dataset_json(config.data.dataset_dir)
    method = load_trained_method(args.run_dir, config, spec, args.checkpoint)
    console = _console()
    with progress_bar("predict", console) as bar:
        task = bar.add_task("predict", total=None)
        written = predict_folder(method, config, args.input_dir, args.output_dir, overwrite=args.overwrite,
                                 progress=lambda done, total, case: bar.update(task, completed=done, total=total))
    print(f"wrote {len(written)} prediction(s) to {args.output_dir}")
    return 0


def cmd_export(args) -> int:
    from medgap.inference.export import export_run

    path = export_run(args.run_dir, args.format, checkpoint=args.checkpoint, out=args.out)
    print(f"wrote {path} (and {path.parent / 'export.json'})")
    return 0


def cmd_convert(args) -> int:
    from medgap.data.convert import converter, parse_options

    module = converter(args.format)
    out = module.convert(args.source, args.out_dir, **parse_options(args.format, args.option))
    print(f"wrote {out}")
    return 0


def cmd_reproduce(args) -> int:
    from medgap.reproduce import plan, reproduce

    if args.plan:
        print(plan(args.paper, budget=args.budget, seeds=args.seeds, work_dir=args.work_dir, smoke=args.smoke))
        return 0
    page = reproduce(args.paper, budget=args.budget, seeds=args.seeds, work_dir=args.work_dir, out_dir=args.out,
                     jobs=args.jobs, smoke=args.smoke, console=_console())
    print(f"wrote {page}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medgap", description="Medical image learning when the data have gaps.")
    parser.add_argument("--version", action="version", version=f"medgap {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="generate a built-in synthetic dataset in the nnU-Net folder layout")
    synth.add_argument("name", help="brain-tumour | atrium-3d | cardiac-2d | digits-av | fundus-genetics | "
                       "chest-xray-text (see docs/datasets.md)")
    synth.add_argument("out_dir")
    synth.add_argument("--cases", type=int, default=None, help="training cases (default: the generator's)")
    synth.add_argument("--test-cases", type=int, default=None, help="held-out cases in imagesTs/labelsTs")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--exist-ok", action="store_true", help="keep an identical existing dataset")
    synth.add_argument("--difficulty", choices=("easy", "realistic"), default=None,
                       help="brain-tumour: easy (default; clean, for tests and the demo) or realistic (soft "
                       "infiltrative borders, tissue overlap, bias, motion, rater label noise; see docs/datasets.md)")
    synth.set_defaults(func=cmd_synth)

    convert = commands.add_parser(
        "convert", help="convert a public dataset layout into medgap's folder layout",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="options (--option NAME=VALUE; defaults shown):\n" + "\n".join(
            f"  {name}: {describe_options(name)}" for name in CONVERTERS))
    convert.add_argument("format", help=" | ".join(CONVERTERS) + " (see docs/your_data.md)")
    convert.add_argument("source")
    convert.add_argument("out_dir")
    convert.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                         help="a converter option, repeatable (e.g. --option val_count=2 --option spacing=1.5,1.5,10); "
                         "each format's options are listed below")
    convert.set_defaults(func=cmd_convert)

    verify = commands.add_parser("verify", help="check a dataset folder and summarise it")
    verify.add_argument("dataset_dir")
    verify.add_argument("--max-image-mib", type=float, default=4096.0)
    verify.set_defaults(func=cmd_verify)

    train = commands.add_parser("train", aliases=["pretrain"],  # pretraining methods (AMVLM) run the same loop
                                help="train a method from a YAML config (key=value overrides)")
    train.add_argument("config")
    train.add_argument("overrides", nargs="*", help="e.g. trainer.max_steps=200 data.labelled_ratio=0.1")
    train.add_argument("--run-dir", default=None, help="default: runs/<config name>")
    train.add_argument("--resume", action="store_true", help="continue from checkpoints/last.pt")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    train.add_argument("--devices", default=None, help="Fabric devices (e.g. 1, 4, 'auto')")
    train.add_argument("--num-nodes", type=int, default=None, help="Fabric nodes (multi-node)")
    train.add_argument("--strategy", default=None, help="Fabric strategy (auto, ddp, ...)")
    train.add_argument("--accelerator", default=None, help="cpu, cuda, gpu, auto")
    train.add_argument("--precision", default=None, help="32-true, bf16-mixed, 16-mixed")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("evaluate", help="score a trained run on its held-out split")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--split", choices=("test", "val"), default=None)
    evaluate.add_argument("--checkpoint", default="best", choices=("best", "last"))
    evaluate.add_argument("--modality-subsets", choices=("all",), default=None,
                          help="all: score every non-empty subset of modalities (2^N - 1 rows, ShaSpec Table 1)")
    evaluate.set_defaults(func=cmd_evaluate)

    score = commands.add_parser("score", help="score a folder of predicted label maps against a folder of labels "
                                "(any tool's predictions; the metrics and tables of evaluate)")
    score.add_argument("prediction_dir", help="CASE<file_ending> label maps, e.g. from medgap predict or nnU-Net")
    score.add_argument("label_dir", help="reference labels with the same names, e.g. DATASET/labelsTs")
    score.add_argument("--dataset", required=True, help="dataset folder whose dataset.json gives labels and regions")
    score.add_argument("--out", default=None, help="folder for score.md/.csv/.json (default: PREDICTION_DIR)")
    score.add_argument("--hd95-definition", choices=("medpy", "monai"), default="medpy", help="see docs/metrics.md")
    score.add_argument("--empty-penalty", type=float, default=None,
                       help="HD95/ASD when exactly one mask is empty (default: NaN, counted apart)")
    score.add_argument("--voxel-units-too", action="store_true", help="also report distances in voxels")
    score.set_defaults(func=cmd_score)

    compare = commands.add_parser("compare", help="several runs side by side per modality subset, paired t-tests")
    compare.add_argument("run_dirs", nargs="+", help="run folders; the first is the reference of the t-tests")
    compare.add_argument("--out", required=True, help="folder for compare.md/.csv/.json")
    compare.add_argument("--modality-subsets", choices=("all", "available"), default="all")
    compare.add_argument("--labels", default=None, help="comma-separated names per run (default: config names); "
                         "runs with one name (several seeds) are pooled")
    compare.add_argument("--split", choices=("test", "val"), default=None)
    compare.add_argument("--checkpoint", default="best", choices=("best", "last"))
    compare.add_argument("--fresh", action="store_true", help="re-evaluate even if a run has a matching subsets.json")
    compare.set_defaults(func=cmd_compare)

    predict = commands.add_parser("predict", help="segment every case of a folder into label files in the "
                                  "dataset's format (NIfTI with the input's affine, PNG, h5)")
    predict.add_argument("run_dir")
    predict.add_argument("input_dir", help="folder of CASE_XXXX<file_ending> files, the ending of the run's "
                         "dataset.json (.nii.gz, .png, ...); absent channels = missing modalities")
    predict.add_argument("output_dir")
    predict.add_argument("--checkpoint", default="best", choices=("best", "last"))
    predict.add_argument("--overwrite", action="store_true", help="replace existing files of the output folder")
    predict.set_defaults(func=cmd_predict)

    export = commands.add_parser("export", help="save a run's network as TorchScript, a torch.export program or "
                                 "ONNX: forward(image, availability) -> logits at the inference patch size")
    export.add_argument("run_dir")
    export.add_argument("--format", required=True, choices=("torchscript", "pt2", "onnx"),
                        help="torchscript: torch.jit.trace (.ts.pt); pt2: torch.export (.pt2); onnx: needs "
                        "pip install 'medgap[onnx]'")
    export.add_argument("--checkpoint", default="best", choices=("best", "last"))
    export.add_argument("--out", default=None, help="model file (default RUN/export/CHECKPOINT.{ts.pt,pt2,onnx}); "
                        "export.json beside it records inputs, normalisation and outputs")
    export.set_defaults(func=cmd_export)

    reproduce = commands.add_parser("reproduce", help="run a paper's main experiments in miniature and write its "
                                    "results page beside the paper's numbers")
    reproduce.add_argument("paper", choices=list(PAPERS))
    reproduce.add_argument("--budget", choices=BUDGETS, default="small",
                           help="tiny: minutes (tests); small: <= 45 min on 2 CPU cores (--jobs 2); medium: <= 1 h on one GPU")
    reproduce.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the budget's)")
    reproduce.add_argument("--work-dir", default=None, help="data and runs (default runs/reproduce/PAPER-BUDGET); "
                           "finished runs there are reused (with --smoke: runs/reproduce/PAPER-BUDGET-smoke)")
    reproduce.add_argument("--out", default=None, help="folder of the results page and its plots (default "
                           "docs/results; with --smoke, WORK_DIR/results)")
    reproduce.add_argument("--jobs", type=int, default=1, help="runs trained at once, each in its own process with "
                           "an equal share of the CPU threads (e.g. 2 on 2 cores: small CPU models scale better "
                           "across processes than across threads)")
    reproduce.add_argument("--plan", action="store_true", help="list the runs (config, steps, patch, batch, which "
                           "are finished) and stop: nothing is generated or trained")
    reproduce.add_argument("--smoke", type=int, default=None, metavar="STEPS",
                           help="train every run for STEPS steps only: checks a budget end to end (data, configs, "
                           "evaluation, the page) in minutes before hours are spent on it")
    reproduce.set_defaults(func=cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come after options (`train x.yaml --run-dir r a.b=1`); argparse leaves those unparsed.
    args, extra = parser.parse_known_args(argv)
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    if len(overrides) != len(extra) or (overrides and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if overrides:
        args.overrides = [*args.overrides, *overrides]
    try:
        return args.func(args)
    except MedgapError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`medgap reproduce --plan | head`): stop quietly, as `cat` does. Point stdout at
        # devnull so that the interpreter's final flush does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, the status a shell reports for a command killed by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
