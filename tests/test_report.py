"""The report from real MLflow runs whose per-query ranks are constructed: one pair of systems that
really differ, one that does not; tables, markers, references, files, determinism and errors."""

from __future__ import annotations

import json
import shutil
import subprocess

import mlflow
import numpy as np
import pytest
from conftest import has_latex, require
from test_cli import one_error_line

from benchmark import tracking
from benchmark.cli import main
from benchmark.data.layout import TWIN_KINDS
from benchmark.metrics import QueryRanks, metrics_from_ranks
from benchmark.report import build_report
from benchmark.report.render import tex_escape

N_IMAGES = 200


def _ranks(rng, strength: float, n: int) -> np.ndarray:
    return np.where(rng.random(n) < strength, 1, rng.integers(2, 40, n))


def log_run(experiment: str, variant: str, dataset: str, seed: int, i2t: np.ndarray, t2i: np.ndarray, folder, tags=None):
    """A real MLflow run as `run` records it: tags, params, per-epoch dev rSum, test metrics, ranks.npz."""
    with mlflow.start_run(experiment_id=tracking.experiment_id(experiment, folder)):
        mlflow.set_tags({"variant": variant, "dataset": dataset, "seed": str(seed)} | (tags or {}))
        mlflow.log_params({"seed": seed, "model.variant": variant, "train.epochs": 3, "train.held_out_twins": ["binding"]})
        for epoch, value in enumerate((300.0, 350.0 + seed, 360.0), start=1):
            mlflow.log_metric("dev_rsum", value, step=epoch)
            if dataset == "synthetic":
                mlflow.log_metric("dev_probe_layout", 40.0 + 10 * epoch, step=epoch)
        metrics = metrics_from_ranks(QueryRanks(i2t, t2i))
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()} | {"best_epoch": 3})
        probes = (np.random.default_rng(seed).random((4, 5 * N_IMAGES)) < 0.7).astype(float)
        probes[3] = 1.0  # scene: every variant solves it, so it is not informative
        path = folder / "ranks.npz"
        np.savez(path, i2t=i2t, t2i=t2i, **{f"probe_{kind}": p for kind, p in zip(TWIN_KINDS, probes, strict=True)})
        mlflow.log_artifact(str(path))


@pytest.fixture(scope="module")
def experiment(results, tmp_path_factory):
    """sa (baseline), gisa (really better), sa+dif (sa's per-query scores shuffled: same rSum), 3 seeds each."""
    name, folder = "report-tests", tmp_path_factory.mktemp("ranks")
    rng = np.random.default_rng(0)
    for seed in range(3):
        base_i2t, base_t2i = _ranks(rng, 0.3, N_IMAGES), _ranks(rng, 0.3, 5 * N_IMAGES)
        log_run(name, "sa", "synthetic", seed, base_i2t, base_t2i, folder)
        log_run(name, "gisa", "synthetic", seed, _ranks(rng, 0.5, N_IMAGES), _ranks(rng, 0.5, 5 * N_IMAGES), folder)
        log_run(name, "sa+dif", "synthetic", seed, rng.permutation(base_i2t), rng.permutation(base_t2i), folder)
    log_run(name, "sa", "synthetic", 9, base_i2t, base_t2i, folder, tags={"sweep.role": "trial"})  # never counted
    return name


@pytest.fixture(scope="module")
def report(results, experiment, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    files = build_report(results, experiment, out=str(out)).files
    return out, files, json.loads((out / "report.json").read_text())


def _row(table, change):
    return next(r for r in table["rows"] if r["Change"].startswith(change))


def test_a_real_difference_is_marked_and_a_null_one_is_not(report):
    _, _, data = report
    ablation = data["tables"]["ablation"]
    real, null = _row(ablation, "sa → gisa"), _row(ablation, "sa → sa+dif")
    assert real["rSum Δ"].endswith("(sig. higher)") and float(real["rSum Δ"].split()[0]) > 20
    assert "sig." not in null["rSum Δ"] and null["rSum Δ"].startswith("+0.0")
    main_rows = {r["Method"]: r for r in data["tables"]["main"]["rows"]}
    assert main_rows["gisa"]["Synthetic rSum"].endswith("(sig. higher)")
    assert "sig." not in main_rows["sa+dif"]["Synthetic rSum"]
    assert main_rows["sa"]["n"] == "3"  # the sweep trial is left out
    assert data["excluded"] == {"sweep runs (they never evaluate on test)": 1}


def test_the_report_writes_every_table_and_figure_and_no_references_beside_synthetic(report):
    out, files, data = report
    names = {p.relative_to(out).as_posix() for p in files}
    assert {"report.md", "main.tex", "ablation.tex", "diagnostics.tex", "report.tex", "runs.csv", "report.json"} <= names
    for stem in ("seed_rsum", "recall_at_k_synthetic", "training_curves_synthetic"):
        assert {f"figures/{stem}.png", f"figures/{stem}.pdf"} <= names
    markdown = (out / "report.md").read_text()
    assert "Reported" not in markdown and "Holm–Bonferroni" in markdown and "α = 0.05" in markdown
    assert "Never trained on (train.held_out_twins): the binding twins" in markdown
    diagnostics = {r["Method"]: r for r in data["tables"]["diagnostics"]["rows"]}
    assert diagnostics["sa"]["Dataset"] == "synthetic" and diagnostics["sa"]["n"] == "3"
    assert diagnostics["sa"]["best epochs"] == "3,3,3"
    mean, interval = diagnostics["sa"]["layout probe (%) per caption"].split(" ", 1)
    low, high = (float(v) for v in interval.strip("[]").split(", "))
    assert low < float(mean) < high and 65 < float(mean) < 75
    assert float(diagnostics["sa"]["layout probe (%) group"].split()[0]) < 30  # 0.7^5 = 17%: all five captions
    assert diagnostics["chance"]["layout probe (%) per caption"] == "50.0" and diagnostics["chance"]["layout probe (%) group"] == "3.1"
    assert diagnostics["informative?"]["layout probe (%) per caption"] == "yes"
    assert diagnostics["informative?"]["scene probe (%) per caption"] == "no"  # saturated
    validity = {r["Probe"]: r for r in data["tables"]["probe_validity"]["rows"]}
    assert validity["layout"]["blind control variant"] == "sa" and 60 < float(validity["layout"]["positive control accuracy (%)"].split()[0]) < 80
    assert validity["binding"]["blind control accuracy (%)"] == "not run" and validity["scene"]["Informative?"] == "no"


def test_the_same_runs_give_the_same_report(results, experiment, report, tmp_path):
    first, _, _ = report
    build_report(results, experiment, out=str(tmp_path))
    for name in ("report.md", "report.json", "main.tex", "ablation.tex", "runs.csv", "figures/seed_rsum.png",
                 "figures/seed_rsum.pdf"):
        assert (tmp_path / name).read_bytes() == (first / name).read_bytes(), name


def test_real_benchmarks_get_reported_rows_with_notes(results, tmp_path):
    rng = np.random.default_rng(5)
    for seed in range(2):
        log_run("report-f30k", "sa", "f30k", seed, _ranks(rng, 0.5, N_IMAGES), _ranks(rng, 0.4, 5 * N_IMAGES), tmp_path)
    build_report(results, "report-f30k", out=str(tmp_path / "out"))
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    reported = [r for r in data["tables"]["main"]["rows"] if r["n"] == "reported"]
    assert any(r["Method"].startswith("VSE-infinity (BUTD region) (BERT)") for r in reported)
    assert all(r["Flickr30K 1K rSum"] != "–" for r in reported)
    assert any("ensemble of two models" in note for note in data["tables"]["main"]["notes"])
    if has_latex():  # the reference rows' names and notes compile too
        compile_latex(tmp_path / "out", tmp_path)


def test_the_bundled_published_rsums_add_up():
    from benchmark.report.references import published

    table = published()
    sums = table[["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10"]].sum(axis=1)
    assert np.allclose(sums, table["rsum"], atol=0.11)
    assert (table["source"] != "").all() and (table["note"] != "").all()


def test_latex_names_are_escaped():
    assert tex_escape("gisa+dif_x 50% a&b") == r"gisa+dif\_x 50\% a\&b"


def compile_latex(folder, tmp_path):
    shutil.copy(folder / "report.tex", tmp_path / "report.tex")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "report.pdf").stat().st_size > 1000


def test_the_latex_compiles(report, tmp_path):
    require(shutil.which("pdflatex"), "no LaTeX engine here (Debian: apt-get install texlive-latex-recommended)")
    compile_latex(report[0], tmp_path)


def test_report_errors_are_one_line(capsys, results, report, experiment):
    out, _, _ = report
    line = one_error_line(capsys, ["report", "--experiment", "nothing-here", "--results-dir", str(results)])
    assert "MLflow experiment 'nothing-here' does not exist" in line and "python -m benchmark run" in line
    line = one_error_line(capsys, ["report", "--experiment", experiment, "--out", str(out), "--results-dir", str(results)])
    assert "already holds a report" in line and "--overwrite" in line
    line = one_error_line(capsys, ["report", "--experiment", experiment, "--baseline", "gisa+dif", "--out", str(out / "x"),
                                   "--results-dir", str(results)])
    assert "--baseline gisa+dif has no runs here; choose one of: sa, gisa, sa+dif" in line
    line = one_error_line(capsys, ["report", "--experiment", experiment, "--variants", "dsrln", "--out", str(out / "y"),
                                   "--results-dir", str(results)])
    assert "no finished runs" in line and "runs of other variants" in line and not (out / "y").exists()
    mine = out.parent / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my notes")
    line = one_error_line(capsys, ["report", "--experiment", experiment, "--out", str(mine), "--results-dir", str(results)])
    assert "holds files that are not a report" in line and (mine / "report.md").read_text() == "my notes"
    line = one_error_line(capsys, ["report", "--experiment", experiment, "--out", str(mine / "report.md"), "--results-dir", str(results)])
    assert "is a file" in line
    assert main(["report", "--experiment", experiment, "--out", str(out), "--overwrite", "--format", "md",
                 "--results-dir", str(results)]) == 0
