"""Claims as data, the tests behind the verdicts, and every verdict outcome from synthetic runs."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

import claims.stats as cs
import claims.verdicts as cv
from claims.registry import (
    CLAIMS,
    ClaimsError,
    get_claim,
    load_claims,
    property_claims,
    statistical_claims,
)
from claims.results import load_results, make_metrics

PLAN = cv.AnalysisPlan(n_resamples=199)
TOTAL = 2_000  # rows per language; over 7 languages one correct item = 0.007 points
PAWSX_LANGS = ("en", "de", "es", "fr", "ja", "ko", "zh")


def claim_file(tmp_path: Path, gain: float = 1.4, languages: Any = "all",
               name: str = "claims.yaml") -> Path:
    """A one-claim file on PAWS-X (arm names are free; today's schema still wants these two)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(json.dumps({"claims": [{
        "id": "G", "text": "treatment beats control", "kind": "statistical", "verified": True,
        "arms": {"treatment": "salt", "control": "baseline"},
        "parts": [{"task": "pawsx", "languages": languages, "description": "test",
                   "gain": gain}]}]}))
    return path


def counts(score: float, langs: tuple[str, ...]) -> dict[str, int]:
    """Correct counts per language whose macro average is ``score`` points (to 1/(n x TOTAL))."""
    total = round(score * TOTAL * len(langs) / 100)
    base, extra = divmod(total, len(langs))
    return {lang: base + (i < extra) for i, lang in enumerate(langs)}


def write_runs(root: Path, treatment: list[float], control: list[float],
               langs: tuple[str, ...] = PAWSX_LANGS, seeds_c: list[int] | None = None,
               **kw: Any) -> Path:
    """One file per seed and arm, each with the given macro-averaged score (points)."""
    root.mkdir(parents=True, exist_ok=True)
    for arm, scores, seeds in (("salt", treatment, range(len(treatment))),
                               ("baseline", control, seeds_c or range(len(control)))):
        for seed, score in zip(seeds, scores, strict=True):
            m = make_metrics("pawsx", arm, seed, counts(score, langs), TOTAL, **kw)
            (root / f"pawsx-{arm}-{seed}.json").write_text(json.dumps(m))
    return root


def verdict(tmp_path: Path, treatment: list[float], control: list[float], gain: float = 1.4,
            **kw: Any) -> cv.Part:
    claims = load_claims(claim_file(tmp_path, gain))
    results = load_results(write_runs(tmp_path / "runs", treatment, control, **kw))
    return cv.audit(results, claims=claims, plan_=PLAN).outcomes[0].parts[0]


BASE = [50.0, 51.0, 52.0]


def shifted(diffs: list[float]) -> list[float]:
    return [b + d for b, d in zip(BASE, diffs, strict=True)]


# --------------------------------------------------------------------------- claims as data


def test_default_claims_file_has_the_ten_claims() -> None:
    assert [c.id for c in CLAIMS] == [f"C{i}" for i in range(1, 11)]
    assert {c.id for c in statistical_claims()} == {"C1", "C9", "C10"}
    assert {c.id for c in property_claims()} == {f"C{i}" for i in range(2, 9)}
    assert [c.seed_verified for c in CLAIMS] == [True] * 4 + [False] + [True] * 3 + [False] * 2
    c1 = get_claim("C1")
    assert (c1.arms.treatment, c1.arms.control) == ("salt", "baseline")
    assert [(p.task, p.gain) for p in c1.paper] == [("xnli", 1.4), ("pawsx", 4.1)]
    assert c1.paper[1].languages == ("de", "es", "fr", "ja", "ko", "zh")
    assert (get_claim("C10").paper[0].treatment, get_claim("C10").paper[0].control) == (66.8,
                                                                                         65.4)
    assert all(c.check.startswith("claims.properties.check_") for c in property_claims())


@pytest.mark.parametrize(("change", "key"), [
    (lambda c: c["parts"][0].update(gain="big"), "claims[0].parts[0].gain"),
    (lambda c: c["parts"][0].update(languages=["xx"]), "claims[0].parts[0]"),
    (lambda c: c["parts"][0].update(task="mnli"), "claims[0].parts[0].task"),
    (lambda c: c.pop("arms"), "claims[0] (claim G)"),
    (lambda c: c["arms"].update(control="salt"), "claims[0].arms"),
    (lambda c: c.update(colour="red"), "claims[0].colour"),
])
def test_bad_claims_file_names_file_and_key(tmp_path: Path, change: Any, key: str) -> None:
    path = claim_file(tmp_path)
    obj = json.loads(path.read_text())
    change(obj["claims"][0])
    path.write_text(json.dumps(obj))
    with pytest.raises(ClaimsError) as err:
        load_claims(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_duplicate_ids_and_missing_file(tmp_path: Path) -> None:
    path = claim_file(tmp_path)
    obj = json.loads(path.read_text())
    obj["claims"].append(obj["claims"][0])
    path.write_text(json.dumps(obj))
    with pytest.raises(ClaimsError, match="duplicate claim ids"):
        load_claims(path)
    with pytest.raises(ClaimsError, match="not found"):
        load_claims(tmp_path / "none.yaml")


def test_consistency_flags_come_from_the_data(tmp_path: Path) -> None:
    flags = cv.consistency_flags(CLAIMS)
    kinds = {(f.kind, f.claims) for f in flags}
    assert ("contradiction", ("C1", "C9")) in kinds  # +1.4 vs +2.0 over the same languages
    assert ("contradiction", ("C9", "C10")) in kinds  # implied English above 100
    assert any(f.claims == ("C10",) and "XTREME" in f.text and "not verified" in f.text
               for f in flags)
    # Consistent numbers in the data remove the findings: they are computed, not hard-coded.
    text = (Path(cv.__file__).with_name("claims.yaml")).read_text()
    text = text.replace("gain: 2.0, treatment: 69.8", "gain: 1.4, treatment: 69.2")
    text = text.replace("treatment: 66.8,\n         control: 65.4", "treatment: 66.8,\n"
                        "         control: 65.4")
    path = tmp_path / "consistent.yaml"
    path.write_text(text)
    fixed = cv.consistency_flags(load_claims(path))
    assert ("contradiction", ("C1", "C9")) not in {(f.kind, f.claims) for f in fixed}


# --------------------------------------------------------------------------- primitives


def test_paired_test_matches_the_formula() -> None:
    t, c = {0: 50.0, 1: 52.0, 2: 51.0}, {0: 49.0, 1: 50.0, 2: 50.5}
    d = np.array([1.0, 2.0, 0.5])
    got = cs.seed_difference(t, c)
    se = d.std(ddof=1) / np.sqrt(3)
    assert got.design == "paired" and got.statistic == pytest.approx(d.mean() / se)
    assert got.p_greater == pytest.approx(sps.t.sf(d.mean() / se, 2))
    assert got.high == pytest.approx(d.mean() + sps.t.ppf(0.95, 2) * se)
    assert got.low == pytest.approx(d.mean() - sps.t.ppf(0.95, 2) * se)


def test_unpaired_seeds_fall_back_to_welch_and_say_so() -> None:
    got = cs.seed_difference({0: 50.0, 1: 52.0, 2: 51.0}, {3: 49.0, 4: 50.0, 5: 50.5})
    ref = sps.ttest_ind([50, 52, 51], [49, 50, 50.5], equal_var=False, alternative="greater")
    assert got.design == "unpaired" and "do not pair" in got.note
    assert got.p_greater == pytest.approx(ref.pvalue)
    # files without a recorded seed never pair
    got = cs.seed_difference({None: 50.0, 1: 52.0}, {None: 49.0, 1: 50.0})
    assert got.design == "unpaired" and got.seeds == (1,)


def test_holm_against_hand_values() -> None:
    # p = (0.01, 0.04, 0.03): sorted 0.01*3, 0.03*2, 0.04*1 -> 0.03, 0.06, max(0.06, 0.04)
    assert cs.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = cs.holm([0.02, float("nan")])
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1])


def test_clustered_mcnemar_by_hand() -> None:
    # Source items 0-2 in languages a and b. Per item (treatment-only minus control-only):
    # item 0: +1 +1 = 2; item 1: -1 + 0 = -1; item 2: +1 +1 = 2. X2 = 3^2 / (4 + 1 + 4) = 1.
    t = {"a": {"x/test-a:0": True, "x/test-a:1": False, "x/test-a:2": True},
         "b": {"x/test-b:0": True, "x/test-b:1": True, "x/test-b:2": True}}
    c = {"a": {"x/test-a:0": False, "x/test-a:1": True, "x/test-a:2": False},
         "b": {"x/test-b:0": False, "x/test-b:1": True, "x/test-b:2": False}}
    got = cs.clustered_mcnemar(t, c)
    assert (got.treatment_only, got.control_only, got.n_clusters) == (4, 1, 3)
    assert got.statistic == pytest.approx(1.0)
    assert got.p == pytest.approx(0.3173105, abs=1e-6)
    # Pooled as if the 6 items were independent it would be (4 - 1)^2 / 5 = 1.8.
    assert got.statistic < 1.8


def test_difference_matrix_and_cluster_bootstrap() -> None:
    t = {"a": {"x/t-a:0": True, "x/t-a:1": True}, "b": {"x/t-b:0": True, "x/t-b:1": False}}
    c = {"a": {"x/t-a:0": False, "x/t-a:1": True}, "b": {"x/t-b:0": False, "x/t-b:1": False}}
    matrix = cs.difference_matrix([(t, c)], ("a", "b"))
    # macro difference: a +50, b +50 -> +50 points; item 0 carries all of it
    assert matrix.tolist() == [[50.0, 0.0]]
    rng = np.random.default_rng(1)
    big = rng.normal(0.0, 1.0, (3, 300))
    one = cs.cluster_bootstrap(big, seed=3, n_resamples=499)
    assert one == cs.cluster_bootstrap(big, seed=3, n_resamples=499)  # seeded
    assert one.low < one.diff < one.high
    # Resampling whole clusters: the interval widens when a cluster's translations move together
    assert cs.cluster_bootstrap(np.repeat(big[:, :100], 3, axis=1), n_resamples=499).high - \
        cs.cluster_bootstrap(np.repeat(big[:, :100], 3, axis=1), n_resamples=499).low > 0
    with pytest.raises(ValueError, match="uid"):
        cs.source_item("no-line")


# --------------------------------------------------------------------------- verdicts


def test_reproduced(tmp_path: Path) -> None:
    part = verdict(tmp_path, shifted([1.3, 1.5, 1.4]), BASE)
    assert part.verdict == "reproduced"
    assert part.test.low > 0 and part.test.high >= 1.4


def test_small_gain_with_tight_interval_is_smaller_than_claimed(tmp_path: Path) -> None:
    part = verdict(tmp_path, shifted([0.12, 0.13, 0.14]), BASE)
    assert part.verdict == "smaller than claimed" and "(significant)" in part.reason
    assert 0 < part.test.low < part.test.high < 1.4


def test_interval_around_zero_excluding_the_claim_is_not_neither(tmp_path: Path) -> None:
    part = verdict(tmp_path, shifted([-0.03, 0.10, 0.23]), BASE)
    assert part.test.low < 0 < part.test.high < 1.4
    assert part.verdict == "smaller than claimed" and "not significant" in part.reason
    assert "gains above" in part.ruled_out()


def test_no_gain_and_worse(tmp_path: Path) -> None:
    assert verdict(tmp_path / "a", shifted([-0.10, 0.0, -0.05]), BASE).verdict == "no gain"
    assert verdict(tmp_path / "b", shifted([-1.0, -1.2, -1.1]), BASE).verdict == "worse"


def test_noisy_is_inconclusive_with_what_would_decide_it(tmp_path: Path) -> None:
    part = verdict(tmp_path, shifted([-2.0, 3.0, 1.0]), BASE)
    assert part.verdict == "inconclusive"
    assert "MDE" in part.reason and "seed pairs for 80% power" in part.reason
    assert part.planned is not None and part.planned.seeds_paired > 3
    assert 0 < part.power_at_claim < 0.8


def test_two_seeds_are_inconclusive_even_when_clear(tmp_path: Path) -> None:
    part = verdict(tmp_path, [51.4, 52.5], [50.0, 51.0])
    assert part.verdict == "inconclusive" and "below the minimum 3" in part.reason


def test_paper_profile_needs_five_seeds(tmp_path: Path) -> None:
    part = verdict(tmp_path, shifted([1.3, 1.5, 1.4]), BASE, profile="paper")
    assert part.verdict == "inconclusive" and "below the minimum 5" in part.reason
    assert part.min_seeds == (5, "paper default (no train.min_seeds recorded)")


def test_recorded_min_seeds_wins(tmp_path: Path) -> None:
    params = {"profile": "proxy", "train": {"min_seeds": 4}}
    if "params" in inspect.signature(make_metrics).parameters:  # params_hash follows params
        root = write_runs(tmp_path / "runs", shifted([1.3, 1.5, 1.4]), BASE, params=params)
    else:
        root = write_runs(tmp_path / "runs", shifted([1.3, 1.5, 1.4]), BASE)
        for path in root.glob("*.json"):
            m = json.loads(path.read_text())
            m["provenance"]["params"] = params
            path.write_text(json.dumps(m))
    part = cv.audit(load_results(root), claims=load_claims(claim_file(tmp_path)),
                    plan_=PLAN).outcomes[0].parts[0]
    assert part.min_seeds[0] == 4 and part.verdict == "inconclusive"


def one_class(path: Path) -> None:
    """Rewrite a metrics file so it predicts class 0 for every item."""
    m = json.loads(path.read_text())
    for lang, pred in m["predictions"].items():
        pred["predicted"] = [0] * len(pred["labels"])
        k = sum(y == 0 for y in pred["labels"])
        m["languages"][lang].update(correct=k, accuracy=k / len(pred["labels"]))
    accs = {lang: v["accuracy"] for lang, v in m["languages"].items()}
    m["averages"].update({"all": float(np.mean(list(accs.values()))),
                          "without_en": float(np.mean([a for x, a in accs.items() if x != "en"]))})
    path.write_text(json.dumps(m))


def test_one_class_runs_are_not_measurable(tmp_path: Path) -> None:
    root = write_runs(tmp_path / "runs", BASE, BASE)
    for path in root.glob("*.json"):
        one_class(path)
    out = cv.audit(load_results(root), claims=load_claims(claim_file(tmp_path)), plan_=PLAN)
    part = out.outcomes[0].parts[0]
    assert out.outcomes[0].verdict == "not measurable"
    assert "majority-class" in part.reason and "nothing learned" in part.reason


def test_summary_only_is_unverifiable(tmp_path: Path) -> None:
    part = verdict(tmp_path, shifted([1.3, 1.5, 1.4]), BASE, predictions=False)
    assert part.verdict == "unverifiable"


def test_missing_languages_read_k_of_n(tmp_path: Path) -> None:
    claims = load_claims(claim_file(tmp_path))
    results = load_results(write_runs(tmp_path / "runs", shifted([1.3, 1.5, 1.4]), BASE,
                                      langs=PAWSX_LANGS[:-1]))
    part = cv.audit(results, claims=claims, plan_=PLAN).outcomes[0].parts[0]
    assert part.verdict == "gain on 6 of 7 languages" and "zh" in part.reason


def test_not_run_without_the_arm(tmp_path: Path) -> None:
    path = claim_file(tmp_path)
    path.write_text(path.read_text().replace('"treatment": "salt"', '"treatment": "other"'))
    results = load_results(write_runs(tmp_path / "runs", BASE, BASE))
    assert cv.audit(results, claims=load_claims(path), plan_=PLAN).outcomes[0].verdict == \
        "not run"


def test_pairing_is_what_decides_a_seed_confounded_gain(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken variant: ignoring the pairing (Welch) loses a gain that pairing detects."""
    t, c = [45.0 + 1.4, 50.0 + 1.5, 55.0 + 1.6], [45.0, 50.0, 55.0]
    assert verdict(tmp_path / "a", t, c).verdict == "reproduced"

    def unpaired(treatment: dict[int, float], control: dict[int, float],
                 alpha: float = 0.05) -> cs.SeedDifference:
        return cs.seed_difference(treatment, {k + 100: v for k, v in control.items()}, alpha)

    monkeypatch.setattr(cv, "seed_difference", unpaired)
    assert verdict(tmp_path / "b", t, c).verdict == "inconclusive"


def test_broken_rule_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken variant: a direction-only rule would call the +0.13 gain reproduced."""
    def direction_only(part: cv.Part, g: float, alpha: float = 0.05) -> tuple[str, str]:
        return ("reproduced", "") if part.test.low > 0 else ("inconclusive", "")

    monkeypatch.setattr(cv, "gain_verdict", direction_only)
    assert verdict(tmp_path, shifted([0.12, 0.13, 0.14]), BASE).verdict == "reproduced"


def test_combine() -> None:
    assert cv.combine(["reproduced", "reproduced"]) == "reproduced"
    assert cv.combine(["reproduced", "worse"]) == "worse"
    assert cv.combine(["inconclusive", "not measurable"]) == "inconclusive"
    assert cv.combine(["smaller than claimed on 1 of 2 languages", "reproduced"]) == \
        "smaller than claimed"
    assert cv.combine(["not run", "not run"]) == "not run"
    assert cv.combine([]) == "not run"


def test_holm_across_the_parts_of_a_claim(tmp_path: Path) -> None:
    path = claim_file(tmp_path)
    obj = json.loads(path.read_text())
    obj["claims"][0]["parts"].append({"task": "pawsx", "languages": ["de", "fr"],
                                      "description": "again", "gain": 1.4})
    path.write_text(json.dumps(obj))
    results = load_results(write_runs(tmp_path / "runs", shifted([1.3, 1.5, 1.4]), BASE))
    parts = cv.audit(results, claims=load_claims(path), plan_=PLAN).outcomes[0].parts
    assert parts[0].p_adjusted == pytest.approx(2 * parts[0].test.p_greater)


def test_imported_numbers_make_property_checks_not_applicable(tmp_path: Path) -> None:
    root = write_runs(tmp_path / "runs", BASE, BASE)
    for path in root.glob("*.json"):
        m = json.loads(path.read_text())
        m["provenance"]["origin"] = {"kind": "import", "format": "csv", "source": "t.csv",
                                     "sha256": None}
        path.write_text(json.dumps(m))
    results = load_results(root)
    props = {"C3": {"verdict": "holds", "evidence": "C3 holds: fine"}}
    out = cv.audit(results, props, plan_=PLAN)
    c3 = next(o for o in out.outcomes if o.claim.id == "C3")
    assert c3.verdict == "not applicable"
