"""``ablate``: run a grid of variants over seeds, reuse finished cells, then report and check the claims."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from benchmark import runner, tracking
from benchmark.ablate.cells import Cell, find_finished, find_resumable, headline_rsum_key
from benchmark.ablate.claims import Row, check_claims, claims_records, claims_table
from benchmark.ablate.execute import run_cells
from benchmark.ablate.slurm import run_cells_slurm
from benchmark.slurm import SlurmOptions
from benchmark.slurm import check as check_slurm
from benchmark.ablate.grid import cell_configs, load_grid
from benchmark.config import RunConfig
from benchmark.errors import UserError
from benchmark.report import build_report
from benchmark.report.render import to_markdown
from benchmark.reproducibility import resolve_device


@dataclass
class AblationResult:
    cells: list[Cell]
    rows: list[Row]
    report_dir: Path
    seconds: float
    jobs: int


def _check(n_seeds: int, jobs: int) -> None:
    if n_seeds < 1:
        raise UserError(f"--seeds must be at least 1; got {n_seeds}")
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1; got {jobs}")


def run_ablation(base: RunConfig, results: Path, grid_name: str = "dsrln", n_seeds: int = 3, jobs: int = 1,
                 resume: bool = False, reports: Path = Path("reports"), slurm: SlurmOptions | None = None) -> AblationResult:
    """Run (or reuse) every cell of the grid, then write the report and the claims check. The cells run here
    (``jobs`` at a time), or with ``slurm`` as a SLURM job array."""
    started = time.perf_counter()
    _check(n_seeds, jobs)
    if slurm is not None:
        check_slurm(slurm)
        jobs = slurm.max_running
    grid = load_grid(grid_name)
    seeds = list(range(base.seed, base.seed + n_seeds))
    cells = [Cell(cfg) for cfg in cell_configs(grid, base, seeds)]
    for variant_cell in cells[::n_seeds]:  # data and variant checks, before anything runs
        runner.check(variant_cell.cfg, results)
    if slurm is None and jobs > 1 and resolve_device(base.device).type == "cuda":
        print("a GPU is in use: cells run one after another on it (--jobs ignored)")
        jobs = 1
    tracking.setup(results)
    from mlflow.tracking import MlflowClient

    experiment = tracking.experiment_id(base.experiment, results)
    resume_dirs: dict[int, Path] = {}
    for i, cell in enumerate(cells):
        cell.run_id = find_finished(experiment, cell)
        cell.reused = cell.run_id is not None
        if cell.run_id is None and resume and (folder := find_resumable(experiment, cell)):
            resume_dirs[i] = folder
    pending = [c for c in cells if c.run_id is None]
    print(f"ablation '{grid.name}' on {base.data.dataset}: {len(grid.variants)} variants x {n_seeds} seeds = {len(cells)} cells; "
          f"{len(cells) - len(pending)} already finished (reused), {len(pending)} to run"
          + (f" ({len(resume_dirs)} resumed from checkpoints)" if resume_dirs else "")
          + f", {min(jobs, max(len(pending), 1))} at a time", flush=True)

    problems: list[str] = []
    finished = [len(cells) - len(pending)]

    def on_done(index: int, run_id: str | None, problem: str | None, seconds: float) -> None:
        cell = cells[index]
        finished[0] += 1
        if run_id:
            cell.run_id = run_id
            rsum = MlflowClient().get_run(run_id).data.metrics.get(headline_rsum_key(cell.cfg.data.dataset), float("nan"))
            print(f"[{finished[0]}/{len(cells)}] {cell.name}: test rSum {rsum:.1f} in {seconds:.0f} s (MLflow run {run_id})", flush=True)
        else:
            problems.append(f"{cell.name}: {problem}")
            print(f"[{finished[0]}/{len(cells)}] {cell.name}: {problem}", flush=True)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = results / "ablations" / f"{grid.name}-{stamp}"
    if slurm is None:
        run_cells(cells, resume_dirs, results, jobs, logs, on_done)
    else:
        run_cells_slurm(cells, resume_dirs, results, slurm, logs, on_done)
    client = MlflowClient()
    run_ids = [c.run_id for c in cells if c.run_id]
    for run_id in run_ids:
        client.set_tag(run_id, f"ablation.{grid.name}", "1")
    if not run_ids:
        raise UserError("no cell finished; see the errors above")

    report_dir = reports / f"ablate-{grid.name}-{base.data.dataset}-{stamp}"
    report = build_report(results, base.experiment, dataset=base.data.dataset, variants=grid.variants, out=str(report_dir),
                          run_ids=run_ids)
    rows = check_claims(report.data, base.data.dataset, grid.claims)
    table = claims_table(rows, base.data.dataset)
    report.add_table(table, claims_records(rows))
    seconds = time.perf_counter() - started
    print("\n" + to_markdown(table))
    print(f"\nreport and claims in {report_dir}; {len(cells)} cells ({sum(c.reused for c in cells)} reused), "
          f"{jobs} at a time{' on SLURM' if slurm else ''}, wall time {seconds:.0f} s")
    if problems:
        raise UserError(f"{len(problems)} cell(s) did not finish ({'; '.join(problems)}); rerun with --resume to continue them")
    return AblationResult(cells, rows, report_dir, seconds, jobs)
