"""``python -m benchmark <command>``: a thin argparse layer over the library.

User mistakes (``UserError``) print one ``error:`` line and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from benchmark.errors import RankFailure, UserError


def _add_results_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", metavar="DIR",
                        help="where runs, the MLflow store and cached data go (default: $ITR_BENCH_RESULTS or ./results)")


# The named flags that each set one config key: (flag, dotted config key, argparse options). The key is
# the flag's dest, so building the config and checking which flags were given both read this table.
CONFIG_FLAGS = (
    ("--variant", "model.variant", {"help": "variant spec, e.g. sa (see `python -m benchmark variants`)"}),
    ("--dataset", "data.dataset", {"help": "synthetic (default) | f30k | coco"}),
    ("--data-root", "data.data_root", {"metavar": "PATH", "help": "folder holding <dataset>_precomp/ (default: $ITR_BENCH_DATA)"}),
    ("--epochs", "train.epochs", {"type": int, "help": "training epochs"}),
    ("--seed", "seed", {"type": int, "help": "random seed (python, numpy, torch)"}),
    ("--device", "device", {"help": "auto (CUDA when present) | cpu | cuda | cuda:N"}),
    ("--experiment", "experiment", {"help": "MLflow experiment name (default: itr-bench)"}),
)


def _add_config_options(parser: argparse.ArgumentParser, with_variant: bool = True) -> None:
    """The options that build a run config: shared by `run`, `sweep` and (without --variant) `ablate`."""
    for flag, key, options in CONFIG_FLAGS:
        if flag == "--variant" and not with_variant:
            parser.set_defaults(**{key: None})
        else:
            parser.add_argument(flag, dest=key, **{"metavar": flag[2:].upper().replace("-", "_")} | options)
    parser.add_argument("--config", metavar="FILE", help="TOML config (a saved results/runs/<run>/config.toml works)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.lr=3e-4")
    _add_results_dir(parser)


def _add_slurm_options(parser: argparse.ArgumentParser, unit: str) -> None:
    """``--executor`` and the SLURM resources of each job (a ``unit``: an ablation cell or a sweep worker)."""
    parser.add_argument("--executor", choices=("local", "slurm"), default="local", help=(
        f"local (default): here; slurm: each {unit} a SLURM job, in one array, through submitit (run on a login node)"))
    group = parser.add_argument_group("SLURM (with --executor slurm)")
    group.add_argument("--partition", help="SLURM partition (default: the cluster's default)")
    group.add_argument("--gpus-per-cell", type=int, default=0, help=f"GPUs per {unit} (default 0)")
    group.add_argument("--cpus-per-cell", type=int, default=2, help=f"CPU cores per {unit} (default 2)")
    group.add_argument("--time", type=int, default=120, metavar="MINUTES", help=f"time limit per {unit} (default 120)")
    group.add_argument("--mem", type=int, metavar="GB", help=f"memory per {unit} (default: the partition's)")
    group.add_argument("--max-running", type=int, default=8, help=f"{unit}s running at once: the job array's cap (default 8)")
    group.add_argument("--retries", type=int, default=2, help=f"resubmissions for a {unit} whose job ends without a result (default 2)")


def _slurm_options(args: argparse.Namespace, local_flag: str | None = None):
    """The SLURM options, or None with ``--executor local``; ``local_flag`` (an int flag, default 1) is refused on SLURM."""
    from benchmark.slurm import SlurmOptions

    if args.executor != "slurm":
        return None
    if local_flag and getattr(args, local_flag.removeprefix("--").replace("-", "_")) != 1:
        raise UserError(f"{local_flag} is for --executor local; on SLURM, --max-running caps the jobs running at once")
    return SlurmOptions(args.partition, args.gpus_per_cell, args.cpus_per_cell, args.time, args.mem, args.max_running, args.retries)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description="itr-bench: train, evaluate and track region-feature image-text retrieval models.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="train and evaluate one variant", description=(
        "Train one variant, select the best epoch on dev (rSum, plus the probes of trained twin kinds), evaluate it on test, and track it in MLflow. "
        "Overrides are dotted config keys, e.g. train.lr=3e-4 model.embed_dim=512."))
    _add_config_options(run)
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    run.add_argument("--log-checkpoint", action="store_true", help="also store best.pt as an MLflow artifact")

    sweep = commands.add_parser("sweep", help="tune a variant's hyperparameters with Optuna", description=(
        "Search hyperparameters with Optuna (TPE sampler, seeded; median pruning on the per-epoch dev score). "
        "The objective is the best dev score (rSum, plus the probes of trained twin kinds on synthetic): the test split is never used. Every trial is a nested MLflow "
        "run under one parent run per sweep. Rerunning with the same --study adds trials to it."))
    _add_config_options(sweep)
    sweep.add_argument("--n-trials", type=int, default=20, help="trials to add to the study (default 20)")
    sweep.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S seconds (a running trial finishes)")
    sweep.add_argument("--study", help="study name (default: <variant>-<dataset>); an existing study is continued")
    sweep.add_argument("--storage", metavar="URL", help="Optuna storage: a journal file path (default: results/optuna.journal) "
                       "or a database URL, e.g. postgresql://user:pass@host/db for workers on several machines")
    sweep.add_argument("--workers", type=int, default=1, help="worker processes on this machine sharing the study (default 1)")
    sweep.add_argument("--space", metavar="FILE", help="TOML search space replacing the default (see benchmark/configs/space.toml)")
    sweep.add_argument("--pruner", default="median", help="median (default) | hyperband | none")
    sweep.add_argument("--export-best", metavar="FILE", help="write the best trial's config, ready for `run --config FILE`")
    _add_slurm_options(sweep, "worker")

    ablate = commands.add_parser("ablate", help="run an ablation grid over seeds and check each DSRLN claim", description=(
        "Run every variant of a grid on N seeds (cells already finished with the same config and seed are reused), "
        "then write the report and a claims check with a verdict per claim."))
    ablate.add_argument("--grid", default="dsrln", help="bundled grid name (default: dsrln) or a TOML grid file")
    ablate.add_argument("--seeds", type=int, default=3, help="seeds per variant, counting up from --seed (default 3)")
    ablate.add_argument("--jobs", type=int, default=1, help="cells run at once in parallel processes (CPU only; default 1)")
    ablate.add_argument("--resume", action="store_true", help="continue interrupted cells from their last checkpoints")
    _add_slurm_options(ablate, "cell")
    _add_config_options(ablate, with_variant=False)

    report = commands.add_parser("report", help="paper-style tables, significance tests and figures from the tracked runs",
                                 description=(
        "Read the finished runs of an MLflow experiment and write Markdown and LaTeX tables (main results with published "
        "reference rows on real benchmarks, ablation, synthetic diagnostics), paired per-query significance tests with "
        "Holm-Bonferroni correction, and figures. Sweep trials and unfinished runs are left out."))
    report.add_argument("--experiment", default="itr-bench", help="MLflow experiment to read (default: itr-bench)")
    report.add_argument("--dataset", help="only runs on this dataset (default: all)")
    report.add_argument("--variants", metavar="V1,V2", help="only these variants, comma-separated, in this order")
    report.add_argument("--baseline", help="variant the main table's significance markers compare against (default: sa)")
    report.add_argument("--out", metavar="DIR", help="output folder (default: reports/<experiment>)")
    report.add_argument("--format", default="md,tex", help="md, tex or md,tex (default); figures, CSV and JSON are always written")
    report.add_argument("--overwrite", action="store_true", help="replace a report already in the output folder")
    report.add_argument("--include-unfinished", action="store_true", help="also use FAILED/KILLED runs that reached test metrics")
    _add_results_dir(report)

    again = commands.add_parser("reproduce", help="run a finished run's config again and compare every number", description=(
        "Read a finished run's saved config, environment and metrics (a run folder, or an MLflow run id), print what "
        "differs from the present checkout and environment (commit, uncommitted changes, packages, Python, threads, "
        "device, dataset digest), train it again as a new MLflow run tagged reproduces=<id>, and print every test "
        "metric side by side. Exit code 0 when every number is identical, 1 when some differ."))
    again.add_argument("run", metavar="RUN", help="results/runs/<run> or an MLflow run id")
    again.add_argument("--strict", action="store_true", help="refuse to run when anything differs from the original's circumstances")
    _add_results_dir(again)

    evaluate = commands.add_parser("eval", help="evaluate a saved checkpoint", description=(
        "Evaluate a checkpoint (results/runs/<run>/checkpoints/best.pt) with the field's protocol."))
    evaluate.add_argument("--checkpoint", required=True, metavar="PATH", help="a best.pt or last.pt")
    evaluate.add_argument("--dataset", help="dataset to evaluate on (default: the one it was trained on)")
    evaluate.add_argument("--data-root", metavar="PATH", help="folder holding <dataset>_precomp/")
    evaluate.add_argument("--split", help="split to evaluate (default: the dataset's test split)")
    evaluate.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    _add_results_dir(evaluate)

    data = commands.add_parser("data", help="generate the synthetic dataset, import or extract real features, check a dataset")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    generate = data_commands.add_parser("generate", help="generate (or find cached) the synthetic dataset", description=(
        "Generate the synthetic diagnostic dataset. Overrides are data.synthetic.* keys, e.g. data.synthetic.noise=0.8."))
    generate.add_argument("--config", metavar="FILE", help="TOML config whose [data.synthetic] section is used")
    generate.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. data.synthetic.train_groups=2000")
    _add_results_dir(generate)
    check = data_commands.add_parser("check", help="validate a data root and report shapes and missing files")
    check.add_argument("--dataset", required=True, help="f30k | coco | synthetic")
    check.add_argument("--data-root", metavar="PATH", help="folder holding <dataset>_precomp/ (default: $ITR_BENCH_DATA)")
    _add_results_dir(check)

    butd = data_commands.add_parser("import-butd", help="import bottom-up-attention TSV files and a Karpathy split file", description=(
        "Stream the original BUTD TSV files (image_id, image_w, image_h, num_boxes, boxes, features; base64 float32) "
        "into <data-root>/<dataset>_precomp/: {split}_ims.npy, normalised {split}_boxes.npy, {split}_caps.txt and "
        "{split}_ids.txt, with the splits, image order and first 5 captions of Karpathy's split file. Memory stays flat; "
        "an interrupted import resumes; nothing is published while a problem remains, and nothing existing is overwritten."))
    butd.add_argument("--tsv", required=True, nargs="+", metavar="PATH", help="TSV files (e.g. trainval/*.tsv.*) or folders holding them")
    butd.add_argument("--split-file", required=True, metavar="JSON", help="Karpathy's dataset_flickr30k.json or dataset_coco.json")
    butd.add_argument("--dataset", required=True, choices=("f30k", "coco"), help="which dataset the files are")
    butd.add_argument("--data-root", metavar="PATH", help="where <dataset>_precomp/ is written (default: $ITR_BENCH_DATA)")
    butd.add_argument("--regions", type=int, default=36, help="boxes per image every row must have (default 36, as BUTD's fixed release)")
    butd.add_argument("--no-restval", action="store_true", help="COCO: leave Karpathy's restval images out of train (the field keeps them)")
    butd.add_argument("--drop-missing", action="store_true", help="leave out images of the split file that no TSV part holds (default: refuse)")
    butd.add_argument("--images", metavar="DIR", help="also check each TSV row's image size against the image file here")
    butd.add_argument("--restart", action="store_true", help="discard an unfinished import of other inputs and start over")

    grid = data_commands.add_parser("extract-grid", help="extract grid features (ResNet C5, pooled) from the dataset's images", description=(
        "Run a torchvision ResNet with weights from a local file over every image of the dataset, in the order of "
        "{split}_ids.txt, and write {split}_grid.npy (n_images, grid*grid, channels): each image resized whole to "
        "image-size x image-size, its C5 map average-pooled to grid x grid cells in row-major order. Nothing is "
        "downloaded; an interrupted extraction resumes."))
    grid.add_argument("--dataset", required=True, choices=("f30k", "coco"), help="which dataset")
    grid.add_argument("--data-root", metavar="PATH", help="folder holding <dataset>_precomp/ with its ids files (default: $ITR_BENCH_DATA)")
    grid.add_argument("--split-file", required=True, metavar="JSON", help="Karpathy's split file: maps each id to its image file")
    grid.add_argument("--images", required=True, metavar="DIR", help="the dataset's image folder (COCO: holding train2014/ and val2014/)")
    grid.add_argument("--weights", required=True, metavar="FILE", help="the backbone's torchvision state dict (.pth), a local file")
    grid.add_argument("--backbone", default="resnet152", help="torchvision ResNet: resnet18|34|50|101|152 (default resnet152, the field's)")
    grid.add_argument("--image-size", type=int, default=448, help="images are resized whole to this square (default 448: a 14x14 C5 map)")
    grid.add_argument("--grid", type=int, default=7, help="cells per side (default 7: 49 cells, as DSRAN and DIF)")
    grid.add_argument("--batch-size", type=int, help="images per forward pass (default 64 on CUDA, 16 on the CPU)")
    grid.add_argument("--workers", type=int, help="DataLoader workers decoding images (default: one per CPU, at most 16)")
    grid.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto: CUDA when present)")
    grid.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                      help="auto (default): bf16 autocast on CUDA, fp32 on CPU")
    grid.add_argument("--restart", action="store_true", help="discard an unfinished extraction of other inputs and start over")

    listing = commands.add_parser("variants", help="list the registered components and how to combine them")
    listing.add_argument("--details", action="store_true", help="also show parameter counts")
    listing.add_argument("--dataset", default="synthetic", help="whose feature dims the parameter counts use (default: synthetic)")
    listing.add_argument("--data-root", metavar="PATH", help="folder holding <dataset>_precomp/")
    _add_results_dir(listing)

    bench = commands.add_parser("bench", help="measure how fast each alignment scores a test set here, against SCAN's loop", description=(
        "Time evaluation scoring on random embeddings, in one process: SCAN's shard loop (the baseline), this suite's "
        "local alignment and global alignment; print pairs/s, the ratio to SCAN's loop, GFLOP/s against this machine's "
        "measured GEMM peaks (fp32 and bf16), the max score difference, and the time for the Flickr30K 1K test and COCO 5K."))
    bench.add_argument("--images", type=int, default=128, help="images in the timed sample (default 128)")
    bench.add_argument("--captions", type=int, default=1280, help="captions in the timed sample (default 1280)")
    bench.add_argument("--regions", type=int, default=36, help="regions per image (default 36, as BUTD)")
    bench.add_argument("--dim", type=int, default=1024, help="embedding size (default 1024)")
    bench.add_argument("--words", type=int, default=12, help="longest caption in words (default 12)")
    bench.add_argument("--json", metavar="FILE", help="also write the figures to FILE (a new file) as JSON")
    bench.add_argument("--field-scale", metavar="N[,N...]", help=(
        "instead: write random features in the real Flickr30K shapes (36x2048 regions, 7x7x2048 grid) at N train "
        "images each (under <results>/field-scale/), and measure training pairs/s and peak RSS at the f30k preset"))
    bench.add_argument("--variant", help="variant for --field-scale (default: the full model, gisa+dif+hier)")
    bench.add_argument("--steps", type=int, help="timed training steps per size for --field-scale (default 10)")
    bench.add_argument("--real-data", metavar="N[,N...]", help=(
        "instead: generate N Flickr30K-shaped inputs (BUTD TSV rows, JPEGs, ResNet-152 weights; under "
        "<results>/real-data-bench/) and time `data import-butd` and `data extract-grid` on them, each in a fresh process"))
    bench.add_argument("--bf16-certificate", metavar="CHECKPOINT", help=(
        "instead: on the checkpoint's test split, bound every score computed from bf16 GEMMs (rigorously) and report "
        "whether fp32's scores lie inside, how many pairs the bound leaves undecided, and the bounded pass's time against fp32"))
    bench.add_argument("--device", help="device for --real-data's extraction: auto (default) | cpu | cuda")
    bench.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="precision for --real-data's extraction (default auto)")
    _add_results_dir(bench)

    ui = commands.add_parser("ui", help="open the MLflow UI on the suite's runs")
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    _add_results_dir(ui)
    return parser


def _run(args: argparse.Namespace) -> None:
    from benchmark import config, runner
    from benchmark.summary import evaluation_report

    results = runner.results_dir(args.results_dir)
    if args.resume:
        given = [flag for flag, key, _ in CONFIG_FLAGS if getattr(args, key) is not None]
        if given or args.config or args.overrides:
            raise UserError("--resume continues with the run's saved config; drop the other options and overrides")
        result = runner.run(config.RunConfig(), results, resume_dir=Path(args.resume))
    else:
        cfg = _config(args, {"log_checkpoint": True} if args.log_checkpoint else {})
        result = runner.run(cfg, results)
    if result is None:  # a rank other than 0 under torchrun: rank 0 reports
        return
    print(f"\ntest ({result.run_dir.name}, best epoch {result.best_epoch}, dev score {result.best_dev_score:.1f})")
    print(evaluation_report(result.metrics, result.test.benchmarks))
    print(f"wall time {result.seconds:.0f} s, peak RSS {result.peak_rss_mb:.0f} MB; outputs in {result.run_dir}")


def _config(args: argparse.Namespace, extra: dict | None = None):
    """Defaults, then --config, then KEY=VALUE overrides, then the named flags."""
    from benchmark import config

    flags = {key: getattr(args, key) for _, key, _ in CONFIG_FLAGS if getattr(args, key) is not None}
    return config.resolve(args.config, config.parse_overrides(args.overrides), config.nest(flags | (extra or {})))


def _sweep(args: argparse.Namespace) -> None:
    from benchmark import runner
    from benchmark.sweep import SweepOptions, run_sweep

    options = SweepOptions(n_trials=args.n_trials, study=args.study, storage=args.storage, workers=args.workers,
                           space_file=args.space, timeout=args.timeout, pruner=args.pruner, export_best=args.export_best,
                           slurm=_slurm_options(args))
    run_sweep(_config(args), runner.results_dir(args.results_dir), options)


def _ablate(args: argparse.Namespace) -> None:
    from benchmark import runner
    from benchmark.ablate import run_ablation

    run_ablation(_config(args), runner.results_dir(args.results_dir), args.grid, args.seeds, args.jobs, args.resume,
                 slurm=_slurm_options(args, "--jobs"))


def _report(args: argparse.Namespace) -> None:
    from benchmark import runner
    from benchmark.report import build_report

    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    report = build_report(runner.results_dir(args.results_dir), args.experiment, args.dataset, variants, args.baseline,
                          args.out, formats, args.overwrite, args.include_unfinished)
    print(f"wrote {len(report.files)} files to {report.folder}:")
    for path in report.files:
        print(f"  {path.relative_to(report.folder)}")


def _reproduce(args: argparse.Namespace) -> int:
    from benchmark import runner
    from benchmark.reproduce import reproduce

    _, exact = reproduce(args.run, runner.results_dir(args.results_dir), args.strict)
    return 0 if exact else 1


def _eval(args: argparse.Namespace) -> None:
    from benchmark import runner
    from benchmark.summary import evaluation_report

    split, result = runner.evaluate_checkpoint(Path(args.checkpoint), runner.results_dir(args.results_dir),
                                               args.dataset, args.data_root, args.split, args.device)
    print(f"{split}:")
    print(evaluation_report(result.metrics, result.benchmarks))


def _data(args: argparse.Namespace) -> None:
    if args.data_command == "import-butd":
        from benchmark.data.butd import import_butd
        from benchmark.data.loader import output_root

        print(import_butd([Path(p) for p in args.tsv], Path(args.split_file), args.dataset, output_root(args.data_root),
                          regions=args.regions, restval=not args.no_restval, drop_missing=args.drop_missing,
                          images_dir=Path(args.images) if args.images else None, restart=args.restart))
    elif args.data_command == "extract-grid":
        from benchmark.data.grid_extraction import extract_grid

        print(extract_grid(args.dataset, args.data_root, Path(args.split_file), Path(args.images), Path(args.weights),
                           backbone=args.backbone, image_size=args.image_size, grid=args.grid, batch_size=args.batch_size,
                           workers=args.workers, device=args.device, precision=args.precision, restart=args.restart))
    elif args.data_command == "generate":
        from benchmark import config, runner
        from benchmark.data import inspection

        overrides = config.parse_overrides(args.overrides)
        if set(overrides) - {"data"} or set(overrides.get("data", {})) - {"synthetic"}:
            raise UserError("data generate takes data.synthetic.* overrides only, e.g. data.synthetic.noise=0.8")
        cfg = config.resolve(args.config, overrides)
        print(inspection.generate(cfg.data.synthetic, runner.results_dir(args.results_dir)))
    else:
        from benchmark import runner
        from benchmark.data import inspection

        report, ok = inspection.check(args.dataset, args.data_root, runner.results_dir(args.results_dir))
        print(report)
        if not ok:
            raise SystemExit(1)


def _variants(args: argparse.Namespace) -> None:
    from benchmark import runner
    from benchmark.variant_catalogue import catalogue

    print(catalogue(args.details, args.dataset, args.data_root, runner.results_dir(args.results_dir)))


def _bench(args: argparse.Namespace) -> None:
    if args.real_data is not None:
        return _real_data_bench(args)
    if args.bf16_certificate is not None:
        return _bf16_certificate(args)
    if args.device is not None or args.precision is not None:
        raise UserError("--device and --precision go with --real-data; scoring is timed on the CPU")
    if args.field_scale is not None:
        return _field_scale(args)
    if args.variant is not None or args.steps is not None:
        raise UserError("--variant and --steps go with --field-scale; without it, bench times scoring on random embeddings")
    from benchmark.bench import run_bench, write_json

    for name in ("images", "captions", "regions", "dim", "words"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1")
    out = Path(args.json) if args.json else None
    if out is not None and (out.exists() or not out.parent.is_dir()):
        raise UserError(f"--json {out}: {'the file exists' if out.exists() else 'its folder does not exist'}; pass a new file in an existing folder")
    bench = run_bench(args.images, args.captions, args.regions, args.dim, args.words)
    print(bench.report())
    if out is not None:
        write_json(bench, out)
        print(f"figures written to {out}")


def _bf16_certificate(args: argparse.Namespace) -> None:
    from benchmark import runner
    from benchmark.bf16_certificate import certify
    from benchmark.evaluation import encode_pool

    if args.field_scale is not None or args.json or args.variant or args.steps or args.device or args.precision:
        raise UserError("--bf16-certificate goes with --results-dir only (it scores on the CPU)")
    loaded = runner.load_for_evaluation(Path(args.bf16_certificate), runner.results_dir(args.results_dir), device="cpu")
    _, texts, pool = encode_pool(loaded.model, loaded.split, loaded.token_ids(), loaded.cfg.eval, loaded.device)
    print(certify(loaded.model, pool, texts, loaded.cfg.model.variant).report())


def _sizes(text: str, flag: str) -> list[int]:
    try:
        sizes = [int(n) for n in text.split(",")]
    except ValueError:
        raise UserError(f"--{flag} '{text}' is not a comma-separated list of image counts, e.g. 2000,8000") from None
    return sizes


def _real_data_bench(args: argparse.Namespace) -> None:
    import shutil

    from benchmark import real_data_bench as bench
    from benchmark.runner import results_dir

    sizes = _sizes(args.real_data, "real-data")
    if min(sizes) < 3:
        raise UserError("--real-data sizes must be at least 3 images (one each for train, dev and test)")
    if args.field_scale is not None or args.json or args.variant or args.steps:
        raise UserError("--real-data goes with --device, --precision and --results-dir only")
    results = results_dir(args.results_dir)
    needed = sum(bench.disk_bytes(n) * 2 for n in sizes)  # the inputs, and the import's output beside them
    if needed > shutil.disk_usage(results).free:
        raise UserError(f"--real-data needs about {needed / 1e9:.1f} GB under {results} and {shutil.disk_usage(results).free / 1e9:.1f} GB "
                        "are free; pass smaller sizes or another --results-dir")
    device, precision = args.device or "auto", args.precision or "auto"
    measured = []
    for n in sizes:
        folder = results / "real-data-bench" / f"n{n}"
        print(f"writing (or reusing) {n:,} generated inputs under {folder} ...", flush=True)
        bench.write_inputs(folder, n)
        measured.append((n, bench.measure(folder, n, device, precision)))
    print(bench.report(measured, device, precision))


def _field_scale(args: argparse.Namespace) -> None:
    import shutil

    import torch

    from benchmark import config, field_scale, runner
    from variants import check as check_variant

    variant, steps = args.variant or "gisa+dif+hier", 10 if args.steps is None else args.steps
    sizes = _sizes(args.field_scale, "field-scale")
    if args.json:
        raise UserError("--json writes the scoring figures; it does not go with --field-scale")
    preset = config.resolve("f30k", {"model": {"variant": variant}})
    check_variant(preset.model)  # before writing GBs
    smallest = (steps + 2) * preset.train.batch_size // 5  # images whose captions fill the warm-up and timed steps
    if min(sizes) < smallest or steps < 1:
        raise UserError(f"--field-scale sizes must be at least {smallest} images for --steps {steps} (two warm-up steps of "
                        f"{preset.train.batch_size} captions first), and --steps at least 1")
    results = runner.results_dir(args.results_dir)
    missing = sum(field_scale.disk_bytes(n) for n in sizes if not (results / "field-scale" / f"f30k-{n}" / "f30k_precomp" / "complete").is_file())
    if missing > shutil.disk_usage(results).free:
        raise UserError(f"--field-scale needs {missing / 1e9:.1f} GB under {results} and {shutil.disk_usage(results).free / 1e9:.1f} GB "
                        "are free; pass smaller sizes or another --results-dir")
    rows = []
    for n in sizes:
        root = results / "field-scale" / f"f30k-{n}"
        print(f"writing (or reusing) {n:,} train images under {root} ...", flush=True)
        field_scale.write_dataset(root, n)
        rows.append(field_scale.measure(root, results, n, variant, steps, torch.get_num_threads()))
        print(f"  {rows[-1].pairs_per_s:.1f} pairs/s, peak RSS {rows[-1].peak_rss_mb:.0f} MB", flush=True)
    print(field_scale.report(rows, variant, steps, torch.get_num_threads()))


def _ui(args: argparse.Namespace) -> int:
    from benchmark import runner, ui

    return ui.serve(runner.results_dir(args.results_dir), args.host, args.port)


def _terminate(signum, frame):
    from benchmark import distributed

    if distributed.context().distributed:  # torchrun stops the other ranks with SIGTERM when one fails
        raise RankFailure("stopped by torchrun: another rank of this job failed (see its output above), "
                                      "or the job was cancelled; the run ends FAILED")
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    # Ctrl-C and SIGTERM raise KeyboardInterrupt, so a run ends KILLED and the UI stops cleanly, even when
    # SIGINT was inherited as ignored (a process started in the background by a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    handlers = {"run": _run, "sweep": _sweep, "ablate": _ablate, "report": _report, "eval": _eval, "data": _data, "variants": _variants, "bench": _bench, "ui": _ui,
                "reproduce": _reproduce}
    try:
        return handlers[args.command](args) or 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RankFailure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
