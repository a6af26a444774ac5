"""``report``: tables, significance tests and figures from the runs in MLflow, all traceable to run ids.

Writes into ``reports/<experiment>/`` by default: ``report.md``, one ``.tex`` per table plus a
standalone ``report.tex``, ``figures/*.png|pdf``, ``runs.csv`` (every run used) and ``report.json``
(every number shown, and every test). The same runs give the same files: the tests are seeded.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmark import tracking
from benchmark.errors import UserError
from benchmark.report import figures
from benchmark.report.collect import (
    RunSet,
    display_name,
    load_ranks,
    load_runs,
    sweep_studies,
)
from benchmark.report.data import ReportData
from benchmark.report.render import Table, latex_document, to_latex, to_markdown
from benchmark.report.tables import ablation_table, diagnostics_table, main_table, probe_validity_table
from variants import parse_variant

FORMATS = ("md", "tex")


@dataclass
class Report:
    """What ``build_report`` made: the read model of its runs, its tables, its folder and the files written."""

    data: ReportData
    tables: list[Table]
    folder: Path
    files: list[Path]

    def add_table(self, table: Table, records: dict[str, Any]) -> list[Path]:
        """Write one more table into the report's folder on its own: ``<name>.md``, ``<name>.tex``, a standalone
        ``<name>_document.tex``, and ``records`` (its numbers, machine-readable) as ``<name>.json``."""
        contents = {".md": to_markdown(table) + "\n", ".tex": to_latex(table), "_document.tex": latex_document([table]),
                    ".json": json.dumps(records, indent=2)}
        paths = []
        for suffix, text in contents.items():
            paths.append(self.folder / f"{table.name}{suffix}")
            paths[-1].write_text(text)
        self.files += paths
        return paths


def _out_dir(out: str | None, experiment: str, overwrite: bool) -> Path:
    """The output folder: new, empty, or (with ``overwrite``) anything; never a file."""
    folder = Path(out) if out else Path("reports") / re.sub(r"[^A-Za-z0-9._-]+", "-", experiment)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file; pass a folder (it is created when missing)")
    if not overwrite and (folder / "report.json").exists():
        raise UserError(f"{folder} already holds a report; pass --out NEW_DIR, or --overwrite to replace it")
    if not overwrite and folder.exists() and any(folder.iterdir()):
        raise UserError(f"{folder} holds files that are not a report; pass --out NEW_DIR, or --overwrite to write into it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the report folder {folder} ({exc.strerror}); pass a writable --out") from None
    return folder


def _no_runs_message(experiment: str, runset: RunSet) -> str:
    excluded = "; ".join(f"{n} {why}" for why, n in runset.excluded.items())
    return (f"no finished runs with test metrics in MLflow experiment '{experiment}'"
            + (f" (left out: {excluded})" if excluded else "")
            + "; train some first, e.g. python -m benchmark run --variant sa --seed 0")


def _comparison_records(comparisons) -> list[dict]:
    return [{**{k: v for k, v in asdict(c).items() if k != "paired"}, "paired": asdict(c.paired) if c.paired else None}
            for c in comparisons]


def build_report(results: Path, experiment: str = "itr-bench", dataset: str | None = None,
                 variants: list[str] | None = None, baseline: str | None = None, out: str | None = None,
                 formats: tuple[str, ...] = FORMATS, overwrite: bool = False, include_unfinished: bool = False,
                 run_ids: list[str] | None = None) -> Report:
    """Build the report (of ``run_ids`` only, when given) and write its files."""
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise UserError(f"unknown --format {', '.join(sorted(unknown)) or '(empty)'}; choose from: md, tex (e.g. md,tex)")
    if variants:
        variants = [parse_variant(v).name for v in variants]
    tracking.setup(results)
    runset = load_runs(experiment, dataset, variants, include_unfinished, run_ids)
    if runset.runs.empty:
        raise UserError(_no_runs_message(experiment, runset))
    runs = runset.runs
    datasets = sorted(runs["dataset"].unique())
    labels = list(dict.fromkeys(runs["label"]))
    if baseline is None:
        baseline = "sa" if "sa" in labels else labels[0]
    elif display_name(baseline) in labels:
        baseline = display_name(baseline)
    else:
        raise UserError(f"--baseline {baseline} has no runs here; choose one of: {', '.join(labels)}")
    print(f"report on {len(runs)} runs of {len(labels)} variants ({', '.join(datasets)}) from experiment '{experiment}'"
          + "".join(f"; left out {n} {why}" for why, n in runset.excluded.items()), flush=True)

    data = ReportData(runs, load_ranks)
    main, main_comparisons = main_table(data, datasets, baseline)
    ablation, ablation_comparisons = ablation_table(data, datasets)
    tables: list[Table] = [main, ablation]
    tables += [t for t in (diagnostics_table(data), probe_validity_table(data)) if t is not None]

    folder = _out_dir(out, experiment, overwrite)
    figure_dir = folder / "figures"
    written = figures.seed_rsum(data, datasets, figure_dir) + figures.recall_curves(data, datasets, figure_dir)
    written += figures.training_curves(data, datasets, figure_dir)
    for study in sweep_studies(experiment):
        written += figures.sweep_figures(study, figure_dir)

    if "md" in formats:
        path = folder / "report.md"
        path.write_text(_markdown(experiment, runset, tables, written, folder))
        written.append(path)
    if "tex" in formats:
        for table in tables:
            path = folder / f"{table.name}.tex"
            path.write_text(to_latex(table))
            written.append(path)
        path = folder / "report.tex"
        path.write_text(latex_document(tables))
        written.append(path)
    runs.drop(columns=["start_time"]).to_csv(folder / "runs.csv", index=False)
    (folder / "report.json").write_text(json.dumps({
        "experiment": experiment, "tracking_uri": tracking.tracking_uri(results), "baseline": baseline,
        "excluded": runset.excluded, "runs": runs.drop(columns=["start_time"]).to_dict(orient="records"),
        "tables": {t.name: {"title": t.title, "caption": t.caption, "rows": t.records(), "notes": t.notes} for t in tables},
        "comparisons": {"main": _comparison_records(main_comparisons), "ablation": _comparison_records(ablation_comparisons)},
    }, indent=2, default=str))
    written += [folder / "runs.csv", folder / "report.json"]
    return Report(data, tables, folder, written)


def _markdown(experiment: str, runset: RunSet, tables: list[Table], files: list[Path], folder: Path) -> str:
    runs = runset.runs
    lines = [f"# itr-bench report: experiment `{experiment}`", "",
             f"{len(runs)} finished runs ({', '.join(sorted(runs['dataset'].unique()))}); every number below comes from "
             f"the runs listed at the end (MLflow run ids) and is also in `report.json`."]
    if runset.excluded:
        lines.append("Left out: " + "; ".join(f"{n} {why}" for why, n in runset.excluded.items()) + ".")
    for table in tables:
        lines += ["", to_markdown(table)]
    pictures = [p for p in files if p.suffix == ".png"]
    if pictures:
        lines += ["", "## Figures", ""] + [f"![{p.stem}]({p.relative_to(folder).as_posix()})" for p in pictures]
    lines += ["", "## Runs", "", "Reproduced: `python -m benchmark reproduce` trained the run again and got every number back "
              "(exactly) or not (differs).", "",
              "| variant | dataset | seed | recipe | MLflow run id | reproduced |", "| --- | --- | ---: | --- | --- | --- |"]
    lines += [f"| {r.label} | {r.dataset} | {r.seed} | {r.recipe} | `{r.run_id}` | {r.reproduced} |" for r in runs.itertuples()]
    return "\n".join(lines) + "\n"
