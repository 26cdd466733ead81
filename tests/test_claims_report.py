"""The report: one-screen summary, methods, sections, no JSON / nan / absolute paths, the plot,
and the committed report is exactly what the audit writes from the committed results."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from claims.registry import load_claims
from claims.report import CELL, audit_to_dict, render_markdown, summary_lines, write_report
from claims.results import load_properties, load_results
from claims.verdicts import AnalysisPlan, audit
from tests.test_claims_stats import BASE, claim_file, one_class, shifted, write_runs

ROOT = Path(__file__).resolve().parents[1]
PLAN = AnalysisPlan(n_resamples=99)


def report(tmp_path: Path, treatment: list[float], control: list[float]) -> tuple[str, dict]:
    claims = load_claims(claim_file(tmp_path))
    results = load_results(write_runs(tmp_path / "runs", treatment, control))
    a = audit(results, claims=claims, plan_=PLAN)
    paths = write_report(a, tmp_path / "out")
    return paths["markdown"].read_text(), json.loads(paths["json"].read_text())


def test_first_screen_answers_the_question(tmp_path: Path) -> None:
    md, doc = report(tmp_path, shifted([0.12, 0.13, 0.14]), BASE)
    screen = md.splitlines()[:30]
    assert any(line.startswith("Scale: profile `proxy`") for line in screen)
    line = next(x for x in screen if x.startswith("| G "))
    assert "smaller than claimed" in line and "+0.13 [" in line and "+1.4" in line
    assert doc["claims"][0]["verdict"] == "smaller than claimed"
    assert md.index("## Methods") < md.index("## G: smaller than claimed")


def test_no_json_nan_long_cells_or_absolute_paths(tmp_path: Path) -> None:
    md, _ = report(tmp_path, shifted([-2.0, 3.0, 1.0]), BASE)
    assert "```" not in md and "{" not in md
    assert not re.search(r"\bnan\b", md, flags=re.IGNORECASE)
    assert str(tmp_path) not in md and "/tmp" not in md
    for line in md.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip("|"))
            assert all(len(cell.strip()) <= CELL + 2 for cell in cells)
    assert "Power: minimum detectable effect" in md


def test_plot_leaves_out_what_is_not_measurable(tmp_path: Path) -> None:
    _, doc = report(tmp_path / "a", shifted([1.3, 1.5, 1.4]), BASE)
    assert doc["plot"] == "claims_per_language.png"
    assert (tmp_path / "a" / "out" / "claims_per_language.png").stat().st_size > 0
    root = write_runs(tmp_path / "b" / "runs", BASE, BASE)
    for path in root.glob("*.json"):
        one_class(path)
    a = audit(load_results(root), claims=load_claims(claim_file(tmp_path / "b")), plan_=PLAN)
    paths = write_report(a, tmp_path / "b" / "out")
    assert audit_to_dict(a)["plot"] is None  # no panel: the file only says so (no stale plot)
    assert paths["plot"].stat().st_size < (tmp_path / "a" / "out" / "claims_per_language.png").stat().st_size
    assert "not measurable" in paths["markdown"].read_text()


def test_budgets_and_codeswitch_figures_are_shown(tmp_path: Path) -> None:
    budgets = [{"stage": "mlm_head", "kind": "steps", "limit": 100, "used": 40,
                "cut_short": True}, {"stage": "codeswitch", "kind": "sentences", "limit": 9,
                                     "used": 9, "cut_short": False}]
    root = write_runs(tmp_path / "runs", BASE, BASE,
                      extra={"budgets": budgets, "codeswitch": {"dict_translation_share": 0.02}})
    a = audit(load_results(root), claims=load_claims(claim_file(tmp_path)), plan_=PLAN)
    md = render_markdown(audit_to_dict(a))
    assert "mlm_head stopped at 40 of 100 steps" in md and "codeswitch stopped" not in md
    assert "dictionary-translation share (mean over runs, evaluation only): 2.00% (noisy" in md


def test_property_claims_say_what_they_ran_on(tmp_path: Path) -> None:
    root = write_runs(tmp_path / "runs", BASE, BASE)
    props = {"C3": {"verdict": "holds", "evidence": "C3 holds: all in the target set",
                    "ran_on": {"bench": {"model": "tiny BERT", "data": "XNLI dev"},
                               "written": {"model": "work/mlm", "data": ["a.jsonl", "b.jsonl"]}}},
             "C4": {"verdict": "holds", "evidence": "C4 holds: p |diff| <= 1e-4 everywhere",
                    "model": "tiny random BERT", "data": "XNLI dev (en/fr)"}}
    a = audit(load_results(root), props, plan_=PLAN)
    md = render_markdown(audit_to_dict(a))
    assert "Ran on: model tiny random BERT, data XNLI dev (en/fr)." in md
    assert ("Ran on: bench: model tiny BERT, data XNLI dev; written: model work/mlm, data "
            "a.jsonl, b.jsonl.") in md
    assert "p \\|diff\\| <= 1e-4" in md  # a pipe inside a cell does not split the table
    assert "| C3      | holds" in md or re.search(r"\| C3 +\| holds", md)
    assert len(summary_lines(a)) == 10


def test_committed_report_is_what_the_audit_writes(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """reports/claims.{md,json} == the audit of results/metrics with reports/properties.json."""
    monkeypatch.chdir(ROOT)
    props = "reports/properties.json"
    a = audit(load_results("results/metrics"), load_properties(props), properties_source=props)
    paths = write_report(a, tmp_path)
    assert paths["markdown"].read_text() == (ROOT / "reports" / "claims.md").read_text()
    assert paths["json"].read_text() == (ROOT / "reports" / "claims.json").read_text()
    assert "plot" in paths
    assert paths["plot"].read_bytes() == (ROOT / "reports" / paths["plot"].name).read_bytes()


def test_committed_results_fit_the_first_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every claim of SALT's file has its line within the first 30 lines of the report."""
    monkeypatch.chdir(ROOT)
    a = audit(load_results("results/metrics"), load_properties("reports/properties.json"),
              plan_=PLAN)
    md = render_markdown(audit_to_dict(a))
    screen = md.splitlines()[:30]
    for claim in a.outcomes:
        assert any(re.match(rf"\| {claim.claim.id} +\| {re.escape(claim.verdict)} ", line)
                   for line in screen), claim.claim.id
    assert md.index("## Methods") > md.index("| C10 ")  # methods come after the summary
    assert not re.search(r"\bnan\b", md) and "```" not in md and "/work/" not in md


@pytest.mark.parametrize(("seeds", "pairs", "noise"), [
    (1, "1 seed pair:", "(test-set noise only: with one seed pair, seed noise is not in this"),
    (3, "3 seed pairs:", "(test-set and seed noise)"),
])
def test_cluster_bootstrap_says_which_noise_it_carries(tmp_path: Path, seeds: int, pairs: str,
                                                       noise: str) -> None:
    md, _ = report(tmp_path, shifted([0.5, 1.0, 1.5])[:seeds], BASE[:seeds])
    line = next(x for x in md.splitlines() if x.startswith("Cluster bootstrap over"))
    assert pairs in line and noise in line
    assert (" 1 seed pair," in md) == (seeds == 1) and " 1 seed pairs" not in md
