"""Closed-form power of the seed t-tests and the plan's seed and row counts."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
from scipy import stats as sps

import claims.power as cp
from claims.registry import load_claims
from claims.results import load_results
from claims.verdicts import AnalysisPlan, audit
from tests.test_claims_stats import BASE, claim_file, shifted, write_runs


def closed_form_paired(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the one-sided paired t-test, written out: P(T' > t_crit), T' ~ nct(n-1, ncp)."""
    df = n - 1
    ncp = effect / (sd / math.sqrt(n))
    return 1 - sps.nct.cdf(sps.t.ppf(1 - alpha, df), df, ncp)


def test_textbook_sample_sizes() -> None:
    """One-sided alpha 0.05, 80% power: paired dz 0.5 -> 27 pairs, dz 0.8 -> 12; two samples
    d 0.5 -> 51 per group (the standard tables, e.g. G*Power); alpha 0.025 -> 34 pairs."""
    assert cp.smallest(lambda n: cp.power_paired(0.5, 1.0, n)) == 27
    assert cp.smallest(lambda n: cp.power_paired(0.8, 1.0, n)) == 12
    assert cp.smallest(lambda n: cp.power_unpaired(0.5, 1.0, 1.0, n)) == 51
    assert cp.smallest(lambda n: cp.power_paired(0.5, 1.0, n, alpha=0.025)) == 34


def test_power_and_mde_against_the_closed_form() -> None:
    assert cp.power_paired(1.4, 1.2, 3) == pytest.approx(closed_form_paired(1.4, 1.2, 3))
    mde = cp.mde(lambda g: cp.power_paired(g, 1.2, 3))
    assert closed_form_paired(mde, 1.2, 3) == pytest.approx(0.8, abs=1e-5)
    # test-set noise lowers power; an infinite test set recovers the seed-only power
    assert cp.power_paired(1.4, 1.2, 5, item_var=2500.0, rows=200) < cp.power_paired(1.4, 1.2, 5)


def test_plan_seed_counts_match_the_closed_form(tmp_path: Path) -> None:
    results = load_results(write_runs(tmp_path / "runs", shifted([-0.5, 1.5, 0.4]), BASE))
    part = audit(results, claims=load_claims(claim_file(tmp_path)),
                 plan_=AnalysisPlan(n_resamples=99)).outcomes[0].parts[0]
    sd = part.planned.components.sd_diff
    assert sd == pytest.approx(math.sqrt(((-0.5 - 0.4667) ** 2 + (1.5 - 0.4667) ** 2
                                          + (0.4 - 0.4667) ** 2) / 2), abs=1e-3)
    n = part.planned.seeds_paired
    assert closed_form_paired(1.4, sd, n) >= 0.8 > closed_form_paired(1.4, sd, n - 1)
    assert part.power_at_claim == pytest.approx(closed_form_paired(1.4, sd, 3))
    item_var = part.planned.components.item_var
    assert item_var > 0
    for k, rows in part.planned.rows_paired.items():  # rows per language with test-set noise
        if rows is None:  # seed noise alone already keeps power below 80%
            assert closed_form_paired(1.4, sd, k) < 0.8
            continue
        assert cp.power_paired(1.4, sd, k, item_var=item_var, rows=rows) >= 0.8
        assert rows == 1 or cp.power_paired(1.4, sd, k, item_var=item_var, rows=rows - 1) < 0.8


def args(**kw: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cp.add_arguments(parser)
    argv = [str(kw.pop("results_dir"))] if "results_dir" in kw else []
    for key, value in kw.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


def test_plan_command_with_assumed_variances(capsys: pytest.CaptureFixture[str]) -> None:
    code = cp.run(args(claim="C1", sd_diff=1.0, sd_arm=1.2, item_var=2500, rows=200, seeds=3))
    out = capsys.readouterr().out
    assert code == 0 and "C1 xnli" in out and "C1 pawsx" in out and "assumed" in out
    assert f"{cp.smallest(lambda n: cp.power_paired(1.4, 1.0, n))} paired" in out


def test_plan_command_refuses_missing_assumptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert cp.run(args(claim="C1", sd_diff=1.0)) == 2
    assert "--sd-arm" in capsys.readouterr().err
    assert cp.run(args(claim="C2", sd_diff=1.0, sd_arm=1, item_var=0, rows=1, seeds=3)) == 2
    assert cp.run(args(claim="C99", sd_diff=1.0)) == 2


def test_plan_command_from_a_metrics_folder(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = write_runs(tmp_path / "runs", shifted([-0.5, 1.5, 0.4]), BASE)
    code = cp.run(args(results_dir=root, claim="G", claims=claim_file(tmp_path)))
    out = capsys.readouterr().out
    assert code == 0 and "measured variances" in out and "rows/lang paired" in out
