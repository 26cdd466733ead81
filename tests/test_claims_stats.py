"""Statistics and verdicts of the claims suite, checked against values worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

import claims.stats as cs
from claims.registry import CLAIMS, get_claim, property_claims, statistical_claims
from claims.results import load_results, make_metrics
from salt.tasks import PAWSX, XNLI

SPECS = {"xnli": XNLI, "pawsx": PAWSX}


def write_arms(root: Path, task: str, salt: list[int], base: list[int], total: int = 100,
               **kw: object) -> None:
    """One file per seed and arm; every language of the task gets the same correct count, so
    each seed's macro average is simply count / total (in points when total is 100)."""
    for system, counts in (("salt", salt), ("baseline", base)):
        for seed, c in enumerate(counts):
            m = make_metrics(task, system, seed, dict.fromkeys(SPECS[task].languages, c), total,
                             **kw)  # type: ignore[arg-type]
            (root / f"{task}-{system}-{seed}.json").write_text(json.dumps(m))


def run_audit(root: Path, **kw: object) -> cs.Audit:
    return cs.audit(load_results(root), n_resamples=999, **kw)  # type: ignore[arg-type]


def outcome(a: cs.Audit, cid: str) -> cs.ClaimOutcome:
    return next(o for o in a.outcomes if o.claim.id == cid)


# --------------------------------------------------------------------------- registry


def test_registry_has_the_ten_claims() -> None:
    assert [c.id for c in CLAIMS] == [f"C{i}" for i in range(1, 11)]
    assert {c.id for c in statistical_claims()} == {"C1", "C9", "C10"}
    assert {c.id for c in property_claims()} == {f"C{i}" for i in range(2, 9)}
    assert [c.seed_confidence for c in CLAIMS] == [0.19, 0.25, 0.23, 0.25, 0.12, 0.15, 0.27,
                                                   0.16, 0.10, 0.10]
    assert [c.seed_verified for c in CLAIMS] == [True] * 4 + [False] + [True] * 3 + [False] * 2
    c1 = get_claim("C1")
    assert [(p.task, p.gain) for p in c1.paper] == [("xnli", 1.4), ("pawsx", 4.1)]
    assert c1.paper[1].metric == ("de", "es", "fr", "ja", "ko", "zh")
    assert (get_claim("C9").paper[0].salt, get_claim("C9").paper[0].baseline) == (69.8, 67.8)
    assert (get_claim("C10").paper[0].salt, get_claim("C10").paper[0].baseline) == (66.8, 65.4)
    assert "XTREME" in get_claim("C10").note
    assert all(c.check.startswith("claims.properties.check_") for c in property_claims())


# --------------------------------------------------------------------------- primitives


def test_welch_statistic_and_df_match_the_formula() -> None:
    salt, base = [72.0, 73.0, 74.0], [70.0, 71.0, 70.0]
    # by hand: means 73 and 70.333; variances 1 and 1/3; se^2 = 1/3 + 1/9 = 4/9
    t_hand = (73 - 211 / 3) / math.sqrt(4 / 9)  # = 4.0
    df_hand = (4 / 9) ** 2 / ((1 / 3) ** 2 / 2 + (1 / 9) ** 2 / 2)  # = 3.2
    w = cs.welch_test(salt, base)
    assert t_hand == pytest.approx(4.0) and df_hand == pytest.approx(3.2)
    assert w.statistic == pytest.approx(t_hand)
    assert w.df == pytest.approx(df_hand)
    assert w.p_greater == pytest.approx(sps.t.sf(t_hand, df_hand))
    half = sps.t.ppf(0.975, df_hand) * math.sqrt(4 / 9)
    assert w.ci95 == pytest.approx((8 / 3 - half, 8 / 3 + half))
    assert w.ci_greater_low == pytest.approx(8 / 3 - sps.t.ppf(0.95, df_hand) * 2 / 3)


def test_welch_undefined_without_variance_or_seeds() -> None:
    assert math.isnan(cs.welch_test([70.0, 70.0], [69.0, 69.0]).statistic)
    assert math.isnan(cs.welch_test([70.0], [69.0, 68.0]).p_greater)


def test_holm_against_hand_values() -> None:
    # sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1 = 0.04, 0.09, 0.08, 0.2; running max
    assert cs.holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert cs.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert cs.holm([0.02]) == pytest.approx([0.02])
    assert len(cs.holm([])) == 0


def test_bh_against_hand_values() -> None:
    # sorted 0.01, 0.03, 0.04, 0.2 times 4/1, 4/2, 4/3, 4/4 = 0.04, 0.06, 0.0533, 0.2;
    # running minimum from the largest: 0.04, 0.0533, 0.0533, 0.2
    got = cs.bh([0.01, 0.04, 0.03, 0.2])
    assert got == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])
    got = cs.bh([0.01, float("nan"), 0.04])  # NaN stays out of the family
    assert got[0] == pytest.approx(0.02) and math.isnan(got[1]) and got[2] == pytest.approx(0.04)


def test_mcnemar_exact_hand_value() -> None:
    # b=8, c=2: two-sided p = 2 * P(X >= 8 | n=10, 1/2) = 2 * (45 + 10 + 1) / 1024
    assert cs.mcnemar_exact(8, 2) == pytest.approx(112 / 1024)
    assert cs.mcnemar_exact(0, 0) == 1.0


def test_mcnemar_pairs_from_items(tmp_path: Path) -> None:
    """Baseline right on items 0-9, SALT on items 2-17: SALT-only 8 (10-17), baseline-only 2."""
    base = [i < 10 for i in range(20)]
    salt = [2 <= i < 18 for i in range(20)]
    for system, flags in (("salt", salt), ("baseline", base)):
        m = make_metrics("xnli", system, 0, {"fr": flags})
        (tmp_path / f"{system}.json").write_text(json.dumps(m))
    tr = load_results(tmp_path).tasks["xnli"]
    (pair,) = cs.mcnemar_pairs(tr, ["fr"])
    assert (pair.seed, pair.salt_only, pair.base_only, pair.n_items) == (0, 8, 2, 20)
    assert pair.p == pytest.approx(112 / 1024)


def test_bootstrap_is_seeded_and_reported() -> None:
    a, b = [72.0, 73.0, 74.0], [70.0, 71.0, 70.0]
    one, two = cs.bootstrap_diff(a, b, seed=7), cs.bootstrap_diff(a, b, seed=7)
    assert (one.low, one.high, one.seed) == (two.low, two.high, 7)
    assert one.low <= 8 / 3 <= one.high


def test_combine_rules() -> None:
    assert cs.combine(["holds", "holds"]) == "holds"
    assert cs.combine(["holds", "fails"]) == "fails"
    assert cs.combine(["holds", "not run"]) == "inconclusive"
    assert cs.combine(["not run", "not run"]) == "not run"
    assert cs.combine(["holds", "inconclusive"]) == "inconclusive"


# --------------------------------------------------------------------------- verdicts


def test_clear_gain_holds_with_hand_statistic(tmp_path: Path) -> None:
    write_arms(tmp_path, "xnli", [72, 73, 74], [70, 71, 70])
    write_arms(tmp_path, "pawsx", [72, 73, 74], [70, 71, 70])
    a = run_audit(tmp_path)
    c1 = outcome(a, "C1")
    assert c1.verdict == "holds"
    xnli = c1.parts[0]
    assert xnli.comparison is not None
    assert xnli.comparison.welch.statistic == pytest.approx(4.0)  # hand value above
    assert xnli.comparison.diff == pytest.approx(8 / 3)
    p = sps.t.sf(4.0, 3.2)
    assert xnli.p_adjusted == pytest.approx(2 * p)  # Holm over two equal p-values
    assert "t=4.000" in c1.evidence and "n=3 SALT + 3 baseline" in c1.evidence
    assert "profile=proxy" in c1.scale
    # paper agreement: +1.4 inside [0.62, 4.72]; effect ratio 2.667 / 1.4
    assert xnli.paper_gain_in_ci is True
    assert xnli.effect_ratio == pytest.approx((8 / 3) / 1.4)
    # per language: every language improves identically and all are significant after BH
    ta = a.analyses["xnli"]
    assert (ta.n_improved, ta.n_significant) == (15, 15)
    assert set(ta.averages) == {"all", "without_en", "under_resourced"}
    assert ta.averages["under_resourced"].languages == ("sw", "ur", "hi", "th")


def test_salt_worse_fails(tmp_path: Path) -> None:
    write_arms(tmp_path, "xnli", [69, 70, 69], [72, 73, 74])
    write_arms(tmp_path, "pawsx", [69, 70, 69], [72, 73, 74])
    a = run_audit(tmp_path)
    assert outcome(a, "C1").verdict == "fails"
    assert outcome(a, "C9").verdict == "fails"
    assert outcome(a, "C1").parts[0].paper_gain_in_ci is False


def test_two_seeds_are_inconclusive_even_when_clear(tmp_path: Path) -> None:
    write_arms(tmp_path, "xnli", [80, 81], [60, 61])
    write_arms(tmp_path, "pawsx", [80, 81], [60, 61])
    c1 = outcome(run_audit(tmp_path), "C1")
    assert c1.verdict == "inconclusive"
    assert "fewer than 3 seeds" in c1.reason


def test_noisy_overlap_is_inconclusive(tmp_path: Path) -> None:
    write_arms(tmp_path, "xnli", [70, 74, 66], [69, 72, 68])
    write_arms(tmp_path, "pawsx", [70, 74, 66], [69, 72, 68])
    a = run_audit(tmp_path)
    assert outcome(a, "C1").verdict == "inconclusive"
    assert outcome(a, "C10").verdict == "inconclusive"


def test_missing_task_is_not_run(tmp_path: Path) -> None:
    write_arms(tmp_path, "xnli", [72, 73, 74], [70, 71, 70])
    a = run_audit(tmp_path)
    c1 = outcome(a, "C1")
    assert [p.verdict for p in c1.parts] == ["holds", "not run"]
    assert c1.verdict == "inconclusive"  # half a claim is not the claim
    # Holm family of one when only one task ran: adjusted p equals the raw p
    assert c1.parts[0].p_adjusted == pytest.approx(c1.parts[0].p_one_sided)
    assert outcome(a, "C3").verdict == "not run"  # no properties supplied


def test_no_metrics_for_any_claim_task(tmp_path: Path) -> None:
    write_arms(tmp_path, "pawsx", [72, 73, 74], [70, 71, 70])
    a = run_audit(tmp_path)
    assert outcome(a, "C9").verdict == "not run"
    assert outcome(a, "C10").verdict == "not run"


def test_properties_feed_property_claims(tmp_path: Path) -> None:
    write_arms(tmp_path, "xnli", [72, 73, 74], [70, 71, 70])
    a = run_audit(tmp_path, properties={"C7": {"verdict": "holds", "evidence": "r in [0,1]"}})
    assert (outcome(a, "C7").verdict, outcome(a, "C7").evidence) == ("holds", "r in [0,1]")
    assert outcome(a, "C8").verdict == "not run"


def test_absolute_claims_never_confirmed_at_proxy_scale(tmp_path: Path) -> None:
    write_arms(tmp_path, "xnli", [70, 71, 69], [68, 67, 68])
    c9 = outcome(run_audit(tmp_path), "C9")
    assert c9.verdict == "holds"
    assert "proxy scale" in c9.reason and "never confirms" in c9.reason


def test_absolute_claims_at_paper_scale_check_levels(tmp_path: Path) -> None:
    # per-seed averages 69.6/69.8/70.0 vs 67.6/67.8/68.0 (total 1000): paper levels inside
    near, far = tmp_path / "near", tmp_path / "far"
    near.mkdir()
    far.mkdir()
    write_arms(near, "xnli", [696, 698, 700], [676, 678, 680], total=1000, profile="paper")
    assert outcome(run_audit(near), "C9").verdict == "holds"
    # same gap, levels 10 points lower: direction holds but levels disagree -> inconclusive
    write_arms(far, "xnli", [596, 598, 600], [576, 578, 580], total=1000, profile="paper")
    c9 = outcome(run_audit(far), "C9")
    assert c9.verdict == "inconclusive" and "outside" in c9.reason


def test_per_language_bh_counts(tmp_path: Path) -> None:
    """fr gains 10 points on every seed (with seed noise), other languages are unchanged."""
    langs = XNLI.languages
    for seed, noise in enumerate([0, 1, -1]):
        for system in ("salt", "baseline"):
            bump = 10 if system == "salt" else 0
            counts = {lang: 60 + noise + (bump if lang == "fr" else 0)
                      + (seed if system == "salt" and lang != "fr" else 0) for lang in langs}
            m = make_metrics("xnli", system, seed, counts)
            (tmp_path / f"{system}-{seed}.json").write_text(json.dumps(m))
    ta = run_audit(tmp_path).analyses["xnli"]
    # SALT's non-fr languages are 60+[0,2,1] vs 60+[0,1,-1]: mean +1, not significant
    assert ta.n_improved == 15
    assert ta.n_significant == 1
    fr = next(lc for lc in ta.per_language if lc.lang == "fr")
    raw = [lc.comparison.welch.p_greater for lc in ta.per_language]
    assert fr.p_bh == pytest.approx(sps.false_discovery_control(raw)[langs.index("fr")])


# --------------------------------------------------------------------------- consistency


def test_consistency_flags() -> None:
    flags = cs.consistency_flags()
    contra = [f for f in flags if f.kind == "contradiction"]
    assert any(f.claims == ("C1", "C9") and "+1.4" in f.text and "+2.0" in f.text
               for f in contra)
    # 15 * 69.8 - 14 * 66.8 = 111.8 > 100: C9 and C10 cannot both be right as labelled
    assert any(f.claims == ("C9", "C10") and "111.8" in f.text for f in contra)
    notes = [f for f in flags if f.kind == "note"]
    assert any(f.claims == ("C10",) and "XTREME" in f.text and "recalled" in f.text
               for f in notes)
    assert any(f.claims == ("C1", "C10") for f in notes)


# --------------------------------------------------------------------------- golden: can fail


def _swapped_arms(salt: object, base: object, confidence: float = 0.95) -> cs.Welch:
    return ORIGINAL_WELCH(base, salt, confidence)  # type: ignore[arg-type]


def _ignores_alternative(salt: object, base: object, confidence: float = 0.95) -> cs.Welch:
    w = ORIGINAL_WELCH(salt, base, confidence)  # type: ignore[arg-type]
    two = sps.ttest_ind(salt, base, equal_var=False)  # default two-sided p used as one-sided
    return cs.Welch(w.statistic, w.df, float(two.pvalue), w.ci_greater_low, w.ci95)


ORIGINAL_WELCH = cs.welch_test


def test_broken_statistic_changes_the_verdict(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    write_arms(good, "xnli", [72, 73, 74], [70, 71, 70])
    write_arms(good, "pawsx", [72, 73, 74], [70, 71, 70])
    write_arms(bad, "xnli", [69, 70, 69], [72, 73, 74])
    write_arms(bad, "pawsx", [69, 70, 69], [72, 73, 74])
    assert outcome(run_audit(good), "C1").verdict == "holds"
    assert outcome(run_audit(bad), "C1").verdict == "fails"
    monkeypatch.setattr(cs, "welch_test", _swapped_arms)
    assert outcome(run_audit(good), "C1").verdict == "inconclusive"
    assert outcome(run_audit(bad), "C1").verdict == "holds"  # the broken test flips a failure


def test_ignoring_the_alternative_changes_the_verdict(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # t = (72 - 69.667) / sqrt(1/3 + 1/9) = 3.5, df 3.2, one-sided p 0.0178: Holm 0.0357 holds;
    # with the two-sided p (0.0357) Holm gives 0.0713 and the claim no longer holds
    write_arms(tmp_path, "xnli", [71, 72, 73], [69, 70, 70])
    write_arms(tmp_path, "pawsx", [71, 72, 73], [69, 70, 70])
    c1 = outcome(run_audit(tmp_path), "C1")
    assert c1.verdict == "holds"
    assert c1.parts[0].comparison.welch.statistic == pytest.approx(3.5)  # type: ignore[union-attr]
    monkeypatch.setattr(cs, "welch_test", _ignores_alternative)
    assert outcome(run_audit(tmp_path), "C1").verdict == "inconclusive"


def test_codeswitch_noise_note_on_c1(tmp_path: Path) -> None:
    extra = {"codeswitch": {"dict_translation_share": {"fr": 0.02, "de": 0.01}}}
    write_arms(tmp_path, "xnli", [72, 73, 74], [70, 71, 70], extra=extra)
    a = run_audit(tmp_path)
    assert a.codeswitch_share is not None and a.codeswitch_share[0] == pytest.approx(0.015)
    assert "mixup with noisy substitutions" in outcome(a, "C1").reason
    assert np.isfinite(a.codeswitch_share[0])
