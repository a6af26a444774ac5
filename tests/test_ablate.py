"""Ablations: a tiny grid runs, finished cells are reused, and the verdict logic is right."""

from __future__ import annotations

import json
import math
import multiprocessing
import re
import signal
import subprocess
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import has_latex, tiny_config
from mlflow.tracking import MlflowClient

from benchmark.ablate import execute, run_ablation
from benchmark.ablate.cells import Cell
from benchmark.ablate.claims import NOT_INFORMATIVE, Row, claim_verdict, verdicts
from benchmark.ablate.grid import load_grid
from benchmark.data.layout import benchmarks
from benchmark.errors import UserError
from benchmark.processes import stop
from benchmark.report.stats import PairedComparison, minimum_detectable_effect

CLAIM = '[[claims]]\ntext = "GISA relates regions"\nprobe = "layout"\ncomparisons = [["sa", "gisa"]]\n'


@pytest.fixture
def grid_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text('variants = ["sa", "gisa"]\n' + CLAIM + '[overrides."gisa"]\n"model.dropout" = 0.0\n')
    return str(path)


def test_a_tiny_grid_completes_and_a_rerun_reuses_every_cell(results, grid_file, tmp_path, capsys):
    base = tiny_config(experiment="ablate-tests", train={"epochs": 1})
    first = run_ablation(base, results, grid_file, n_seeds=2, reports=tmp_path / "reports")
    assert [(c.variant, c.cfg.seed, c.reused) for c in first.cells] == [("sa", 0, False), ("sa", 1, False),
                                                                         ("gisa", 0, False), ("gisa", 1, False)]
    assert first.cells[2].cfg.model.dropout == 0.0 and first.cells[0].cfg.model.dropout == 0.1
    claims = json.loads((first.report_dir / "claims.json").read_text())
    assert list(claims["claims"]) == ["GISA relates regions"]
    assert [(r["baseline"], r["variant"], r["evidence"], r["seeds"]) for r in claims["rows"]] == [
        ("sa", "gisa", "rSum", [0, 1]), ("sa", "gisa", "probe layout", [0, 1])]
    assert all(r["mde_80"] is not None for r in claims["rows"])  # two seeds: a spread, so a detectable effect
    assert (first.report_dir / "probe_validity.tex").is_file() and (first.report_dir / "diagnostics.tex").is_file()
    assert (first.report_dir / "report.md").is_file() and (first.report_dir / "claims.md").is_file()
    if has_latex():
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "claims_document.tex"],
                              cwd=first.report_dir, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:]
    second = run_ablation(base, results, grid_file, n_seeds=2, reports=tmp_path / "reports")
    assert all(c.reused for c in second.cells)
    assert [c.run_id for c in second.cells] == [c.run_id for c in first.cells]
    assert "4 already finished (reused), 0 to run" in capsys.readouterr().out


def test_two_workers_run_four_cells_to_the_numbers_of_one_process(results, grid_file, tmp_path):
    """--jobs 2 over four cells: at most two worker processes run them (so one runs cells one after another),
    and every cell has the numbers that the cells run in this process give."""
    base = tiny_config(train={"epochs": 1})
    alone = run_ablation(replace(base, experiment="ablate-in-process"), results, grid_file, n_seeds=2,
                         reports=tmp_path / "reports")
    parallel = run_ablation(replace(base, experiment="ablate-workers"), results, grid_file, n_seeds=2, jobs=2,
                            reports=tmp_path / "reports")
    client = MlflowClient()

    def test_metrics(run_id):
        return {k: v for k, v in client.get_run(run_id).data.metrics.items() if k.startswith("test_")}

    assert [(c.name, c.reused) for c in parallel.cells] == [(c.name, False) for c in alone.cells]
    for one, other in zip(alone.cells, parallel.cells):
        assert test_metrics(other.run_id) == test_metrics(one.run_id) != {}
    (logs,) = (results / "ablations").glob("tiny-*")  # the in-process run writes no logs
    pids = [re.search(r"\(worker process (\d+)\)", log.read_text()).group(1) for log in sorted(logs.glob("*.log"))]
    assert len(pids) == 4 and len(set(pids)) <= 2  # a process per cell would be four


def test_an_error_in_the_parent_stops_every_worker(results, tmp_path, monkeypatch):
    """A worker waits for its next cell until it is told there is none: an error in the parent (here, a store
    that fails when a cell is reported) must stop the workers, or the command would never exit. Each must
    leave on its SIGTERM (one waiting for a cell too, though the signal may land on one of torch's threads),
    not only when ``stop`` gives up and kills it."""
    exit_codes = []

    def stop_and_record(processes):
        processes = list(processes)
        stop(processes, grace_s=30)
        exit_codes.extend(process.exitcode for process in processes)

    monkeypatch.setattr(execute, "stop", stop_and_record)
    cells = [Cell(tiny_config(seed=seed, train={"epochs": 1})) for seed in range(4)]

    def report(*_):
        raise RuntimeError("the tracking store is down")

    with pytest.raises(RuntimeError, match="store is down"):
        execute.run_cells(cells, {}, results, 2, tmp_path / "logs", report)
    assert multiprocessing.active_children() == []
    assert len(exit_codes) == 2 and -signal.SIGKILL not in exit_codes, exit_codes


def _result(delta, per_seed, p=0.001):
    return PairedComparison((0, 1, 2), delta, delta - 1, delta + 1, p, 0.5, per_seed)


@pytest.mark.parametrize("result, p_holm, informative, expected", [
    (_result(5.0, (4.0, 5.0, 6.0)), 0.01, True, "supported"),
    (_result(-5.0, (-4.0, -5.0, -6.0)), 0.01, True, "contradicted"),
    (_result(5.0, (4.0, 5.0, 6.0)), 0.2, True, "inconclusive"),  # not significant after correction
    (_result(5.0, (12.0, 5.0, -2.0)), 0.01, True, "inconclusive"),  # significant, but one seed disagrees
    (_result(5.0, (4.0, 5.0, 6.0)), 0.01, False, NOT_INFORMATIVE),  # the probe cannot separate these variants
    (None, float("nan"), False, "not run"),
])
def test_row_verdicts(result, p_holm, informative, expected):
    assert Row("c", "a", "b", "probe layout", result, p_holm, informative).verdict() == expected


def test_a_row_verdict_uses_the_alpha_it_is_given():
    row = Row("c", "a", "b", "probe layout", _result(5.0, (4.0, 5.0, 6.0)), 0.02)
    assert (row.verdict(), row.verdict(alpha=0.01)) == ("supported", "inconclusive")


def test_claim_verdicts_need_every_probe_row():
    assert claim_verdict(["supported", "supported"]) == "supported"
    assert claim_verdict(["supported", "inconclusive"]) == "inconclusive"
    assert claim_verdict(["contradicted", "inconclusive"]) == "contradicted"
    assert claim_verdict(["supported", "contradicted"]) == "inconclusive"
    assert claim_verdict(["supported", "not run"]) == "not run"
    assert claim_verdict(["supported", NOT_INFORMATIVE]) == NOT_INFORMATIVE
    assert claim_verdict(["contradicted", NOT_INFORMATIVE]) == "contradicted"  # never hidden by a row at its ceiling
    rows = [Row("c", "a", "b", "rSum", _result(-5.0, (-4.0, -5.0, -6.0)), 0.01),  # context only: it does not decide
            Row("c", "a", "b", "probe layout", _result(5.0, (4.0, 5.0, 6.0)), 0.01)]
    assert verdicts(rows) == {"c": "supported"}


def test_minimum_detectable_effect_is_the_paired_t_power_bound():
    # (t_0.975,2 + t_0.8,2) * sd / sqrt(3) with sd = 1: 4.3027 + 1.0607 = 5.3634, / 1.7321
    assert minimum_detectable_effect((1.0, 2.0, 3.0)) == pytest.approx(3.0966, abs=1e-3)
    assert minimum_detectable_effect((2.0, 4.0, 6.0)) == pytest.approx(2 * 3.0966, abs=1e-3)
    assert minimum_detectable_effect((5.0,)) != minimum_detectable_effect((5.0,))  # NaN: one seed has no spread


def test_the_default_grid_and_bad_grids(tmp_path):
    grid = load_grid("dsrln")
    assert grid.variants == ["sa", "gisa", "sa-pos", "dif", "gisa+dif", "gisa+dif+hier", "none", "gisa+concat",
                             "gisa+concat-matched", "gisa+dif-unmasked", "none+grid"]
    assert [(c.probe, c.comparisons) for c in grid.claims] == [
        ("layout", (("sa", "gisa"), ("dif", "gisa+dif"))), ("layout", (("sa-pos", "gisa"),)),
        ("context", (("gisa+concat", "gisa+dif"), ("gisa+concat-matched", "gisa+dif"), ("gisa+dif-unmasked", "gisa+dif"))),
        ("crowded_binding", (("gisa+dif", "gisa+dif+hier"),))]
    bad = tmp_path / "bad.toml"
    bad.write_text('variants = ["sa", "gsia"]\n')
    with pytest.raises(UserError, match="unknown variant token 'gsia'"):
        load_grid(str(bad))
    with pytest.raises(UserError, match="grid file nope does not exist"):
        load_grid("nope")
    for claim, message in [(CLAIM.replace('"layout"', '"colour"'), "names probe 'colour'; choose one of: layout"),
                           (CLAIM.replace('"gisa"]', '"gisa+dif"]'), "compares 'gisa+dif', which is not in the grid's variants"),
                           (CLAIM.replace('probe = "layout"\n', ""), "each claim needs exactly text, probe and comparisons")]:
        bad.write_text('variants = ["sa", "gisa"]\n' + claim)
        with pytest.raises(UserError, match=re.escape(message)):
            load_grid(str(bad))
    for overrides in ("overrides = 3\n", '[overrides]\ngisa = 3\n'):
        bad.write_text('variants = ["sa", "gisa"]\n' + overrides)
        with pytest.raises(UserError, match="overrides must be tables of config keys per variant"):
            load_grid(str(bad))


def _another(key: str, value):
    """A different valid value for a config field."""
    if key == "model.variant":
        return "gisa"
    if key == "data.dataset":
        return "f30k"
    if key == "train.held_out_twins":
        return [] if value else ["binding"]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 + 0.3  # differs unless 0.6, and stays in [0, 1] for the fractions
    if isinstance(value, list):
        return [v + 1 for v in value] or [1]
    return value + "-other"


def test_a_finished_cell_is_reused_only_by_the_same_config_field_by_field(results):
    """Reuse is refused for a change in any field that changes the numbers (every such field of the config,
    taken from the config itself) and allowed for a change in where the run goes."""
    from benchmark import config as configuration
    from benchmark import runner, tracking
    from mlflow.tracking import MlflowClient

    from benchmark.ablate.cells import Cell, find_finished

    cfg = tiny_config(experiment="reuse-tests", train={"epochs": 1})
    run_id = runner.run(cfg, results).run_id
    experiment = tracking.experiment_id(cfg.experiment, results)
    assert find_finished(experiment, Cell(cfg)) == run_id
    fields = configuration.flatten(cfg)
    for key in configuration.UNHASHED - {"experiment"}:
        assert find_finished(experiment, Cell(configuration.with_values(cfg, {key: _another(key, fields[key])}))) == run_id, key
    changed = [key for key in fields if key not in configuration.UNHASHED]
    assert len(changed) > 40
    for key in changed:
        other = configuration.with_values(cfg, {key: _another(key, fields[key])})
        assert find_finished(experiment, Cell(other)) is None, f"a cell with another {key} reused the run"
    MlflowClient().set_tag(run_id, "variants_revision", "0")  # the same config, trained by other component code
    assert find_finished(experiment, Cell(cfg)) is None


def _fake_grid_data():
    """ReportData for sa (blind on layout, weak retrieval) and gisa (layout solved, strong retrieval), 3 seeds,
    from hand-built ranks: no training, no MLflow."""
    import pandas as pd

    from benchmark.report.data import ReportData

    rng = np.random.default_rng(0)
    runs, ranks = [], {}
    at_95 = np.r_[np.ones(190), np.zeros(10)]  # exactly 95.0: at the ceiling
    for label, strong, layout in (("sa", False, np.full(200, 0.5)), ("gisa", True, np.ones(200)), ("gisa+concat", True, at_95)):
        for seed in range(3):
            run_id = f"{label}-{seed}"
            runs.append({"run_id": run_id, "dataset": "synthetic", "label": label, "seed": seed})
            ranks[run_id] = {"i2t": np.ones(40, int) if strong else rng.integers(1, 30, 40),
                             "t2i": np.ones(200, int) if strong else rng.integers(1, 30, 200),
                             "probe_layout": layout, "probe_scene": np.ones(200)}  # all solve scene: saturated
    return ReportData(pd.DataFrame(runs), ranks.__getitem__)


def test_check_claims_rows_informativeness_holm_and_verdicts_on_hand_built_runs():
    from benchmark.ablate.claims import check_claims, claims_records, claims_table
    from benchmark.report.render import to_markdown
    from benchmark.ablate.grid import Claim

    claims = (Claim("GISA relates", "layout", (("sa", "gisa"),)), Claim("scene", "scene", (("sa", "gisa"),)),
              Claim("absent", "layout", (("sa", "dif"),)), Claim("ceiling", "layout", (("gisa+concat", "gisa"),)))
    rows = check_claims(_fake_grid_data(), "synthetic", claims)
    assert [(r.claim, r.baseline, r.variant, r.evidence, r.verdict()) for r in rows] == [
        ("GISA relates", "sa", "gisa", "rSum", "supported"), ("GISA relates", "sa", "gisa", "probe layout", "supported"),
        ("scene", "sa", "gisa", "rSum", "supported"), ("scene", "sa", "gisa", "probe scene", NOT_INFORMATIVE),
        ("absent", "sa", "sa+dif", "rSum", "not run"), ("absent", "sa", "sa+dif", "probe layout", "not run"),
        # layout informs on the grid (sa at chance), but this row's variants are both at >= 95: no difference could show
        ("ceiling", "gisa+concat", "gisa", "rSum", "inconclusive"), ("ceiling", "gisa+concat", "gisa", "probe layout", NOT_INFORMATIVE)]
    layout = rows[1].result
    assert layout.delta == pytest.approx(50.0) and layout.per_seed_delta == pytest.approx((50.0, 50.0, 50.0))
    assert rows[3].result.delta == 0.0  # computed, but not informative: both at 100
    assert 0 < rows[0].p_holm <= 6 * rows[0].result.permutation_p  # Holm over the 6 rows that ran
    assert verdicts(rows) == {"GISA relates": "supported", "scene": NOT_INFORMATIVE, "absent": "not run", "ceiling": NOT_INFORMATIVE}
    records = claims_records(rows)
    assert records["claims"] == verdicts(rows) and len(records["rows"]) == 8
    table = to_markdown(claims_table(rows, "synthetic"))
    assert "| GISA relates | sa → gisa | probe layout | 0,1,2 | +50.0 | [+50.0, +50.0] | 0.0 | < 0.001 | **supported** |" in table
    assert "| scene | sa → gisa | probe scene | 0,1,2 | +0.0 | [+0.0, +0.0] | 0.0 | 1.000 | not informative |" in table
    assert "| absent | sa → sa+dif | probe layout | – | – | – | – | – | not run |" in table
    assert "| scene | all probe rows |  |  |  |  |  |  | not informative |" in table


def test_the_claims_table_and_claims_json_in_full():
    """Every cell a reader sees, and every field of ``claims.json``, for the hand-built grid above."""
    from benchmark.ablate.claims import check_claims, claims_records, claims_table
    from benchmark.ablate.grid import Claim
    from benchmark.report.render import to_markdown

    from benchmark.report import stats

    data = _fake_grid_data()
    claims = (Claim("GISA relates", "layout", (("sa", "gisa"),)), Claim("absent", "layout", (("sa", "dif"),)))
    rows = check_claims(data, "synthetic", claims)
    # the rSum row, computed here without the claims code: the paired comparison of the two variants' test ranks
    headline = benchmarks("synthetic")[0]
    rsum = stats.compare_paired(data.scores("synthetic", "gisa", headline), data.scores("synthetic", "sa", headline))
    layout_p = stats.paired_permutation_p(np.ones(600), np.full(600, 0.5))  # 3 x 200 captions, each 1 against ½ (p is scale-free)
    p_holm = stats.holm([rsum.permutation_p, layout_p])  # the two rows that ran
    assert rows[0].result == rsum and rows[1].result.permutation_p == layout_p
    assert [r.p_holm for r in rows[:2]] == p_holm and math.isnan(rows[2].p_holm) and math.isnan(rows[3].p_holm)
    assert to_markdown(claims_table(rows, "synthetic")) == "\n".join([
        "**Claims check**",
        "",
        "| Claim | Comparison | Evidence | Seeds | Δ | 95% CI | MDE (80%) | p Holm | Verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| GISA relates | sa → gisa | rSum (context) | 0,1,2 | {rsum.delta:+.1f} | [{rsum.ci_low:+.1f}, {rsum.ci_high:+.1f}] "
        f"| {minimum_detectable_effect(rsum.per_seed_delta):.1f} | < 0.001 | **supported** |",
        "| GISA relates | sa → gisa | probe layout | 0,1,2 | +50.0 | [+50.0, +50.0] | 0.0 | < 0.001 | **supported** |",
        "| absent | sa → sa+dif | rSum (context) | – | – | – | – | – | not run |",
        "| absent | sa → sa+dif | probe layout | – | – | – | – | – | not run |",
        "| *Verdict per claim* | | | | | | | | |",
        "| GISA relates | all probe rows |  |  |  |  |  |  | **supported** |",
        "| absent | all probe rows |  |  |  |  |  |  | not run |",
        "",
        "On synthetic. Δ: variant minus baseline (probe accuracy points, or rSum points), mean over the shared seeds; "
        "95% CI: bootstrap over captions (queries) within each seed. Seeds combined by a paired per-caption randomisation "
        "test stratified by seed, Holm–Bonferroni across all rows at α = 0.05, and the sign must agree in every seed. "
        "MDE (80%): the smallest mean difference a paired t-test over these seeds would detect with 80% power at "
        "α = 0.05, given the seed-to-seed spread of Δ. Not informative: the probe cannot separate the grid's variants "
        "(all ≥ 95% or none above chance) or both variants of the row are ≥ 95%. A claim's verdict rests on its probe "
        "rows; its rSum rows are context. A claim is supported only when all its probe rows are."])
    assert 0 < rsum.ci_low < rsum.delta < rsum.ci_high and rows[0].mde > 0  # the cells above are not all alike

    def ran(evidence, p, result):
        return {"claim": "GISA relates", "baseline": "sa", "variant": "gisa", "evidence": evidence, "verdict": "supported",
                "p_holm": p, "informative": True, "delta": pytest.approx(result.delta),
                "ci": pytest.approx([result.ci_low, result.ci_high]),
                "mde_80": pytest.approx(minimum_detectable_effect(result.per_seed_delta)), "seeds": [0, 1, 2]}

    def not_run(evidence, informative):
        return {"claim": "absent", "baseline": "sa", "variant": "sa+dif", "evidence": evidence, "verdict": "not run",
                "p_holm": pytest.approx(math.nan, nan_ok=True), "informative": informative, "delta": None, "ci": None,
                "mde_80": None, "seeds": []}

    assert claims_records(rows) == {
        "rows": [ran("rSum", p_holm[0], rsum), ran("probe layout", p_holm[1], SimpleNamespace(
                     delta=50.0, ci_low=50.0, ci_high=50.0, per_seed_delta=(50.0, 50.0, 50.0))),
                 not_run("rSum", True), not_run("probe layout", False)],
        "claims": {"GISA relates": "supported", "absent": "not run"}}


def _fake_coco_data():
    """COCO runs of exactly two variants, 2 seeds: gisa retrieves better, sa solves the spatial foils and gisa does not."""
    import pandas as pd

    from benchmark.report.data import ReportData

    rng = np.random.default_rng(1)
    runs, ranks = [], {}
    for label, strong, foils in (("sa", False, np.ones(100)), ("gisa", True, np.r_[np.ones(80), np.zeros(20)])):
        for seed in (0, 1):
            run_id = f"{label}-{seed}"
            runs.append({"run_id": run_id, "dataset": "coco", "label": label, "seed": seed})
            ranks[run_id] = {"probe_foil_spatial": foils}
            for prefix, n_images, folds in (("1k_", 10, 5), ("5k_", 50, 1)):
                for k in range(folds):
                    fold = f"fold{k}_" if folds > 1 else ""
                    ranks[run_id][f"{prefix}{fold}i2t"] = np.ones(n_images, int) if strong else rng.integers(1, 30, n_images)
                    ranks[run_id][f"{prefix}{fold}t2i"] = np.ones(5 * n_images, int) if strong else rng.integers(1, 30, 5 * n_images)
    return ReportData(pd.DataFrame(runs), ranks.__getitem__)


def test_claims_on_real_data_use_the_caption_foils_or_else_rsum():
    from benchmark.ablate.claims import check_claims, claims_table, verdicts
    from benchmark.ablate.grid import Claim
    from benchmark.report.render import to_markdown

    data = _fake_coco_data()
    claims = (Claim("GISA relates", "layout", (("sa", "gisa"),)), Claim("scene context", "scene", (("sa", "gisa"),)))
    rows = check_claims(data, "coco", claims)
    # layout's stand-in is the spatial foil; scene has none, so that claim rests on its rSum row
    assert [(r.claim, r.evidence, r.verdict()) for r in rows] == [
        ("GISA relates", "rSum", "supported"), ("GISA relates", "probe foil_spatial", "contradicted"),
        ("scene context", "rSum", "supported")]
    # the headline is COCO 1K: its five folds, pooled
    assert rows[0].result.delta == pytest.approx(600 - np.mean([s.contributions.sum() for s in
                                                               data.scores("coco", "sa", benchmarks("coco")[0]).values()]))
    assert rows[1].result.delta == pytest.approx(-20.0) and rows[1].informative  # the baseline's ceiling alone hides nothing
    assert verdicts(rows) == {"GISA relates": "contradicted", "scene context": "supported"}
    table = claims_table(rows, "coco")
    assert table.name == "claims"  # reports/.../claims.md and claims.tex
    markdown = to_markdown(table)
    foils = rows[1].result
    assert (f"| GISA relates | sa → gisa | probe foil_spatial | 0,1 | -20.0 | [{foils.ci_low:+.1f}, {foils.ci_high:+.1f}] | 0.0 "
            "| < 0.001 | **contradicted** |") in markdown
    assert "| GISA relates | all probe rows |  |  |  |  |  |  | **contradicted** |" in markdown
    assert "| scene context | all rSum rows (no probe) |  |  |  |  |  |  | **supported** |" in markdown
    # McNemar counts the captions each variant solves: 20 per seed only sa solves
    assert rows[1].result.mcnemar_p == pytest.approx(2 * 0.5 ** 40)
