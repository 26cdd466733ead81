"""The declared analysis plan and the verdict rules that use the claimed size.

``PLAN`` is fixed before any data is read and printed in the report's methods section. For each
claimed gain ``g`` of a part (one task and language set) the rule is, in this order:

1. no runs of the task or of either arm -> **not run**;
2. any run predicts one class for every item -> **not measurable** (a majority-class classifier:
   nothing was learned at this scale, so the comparison carries no information);
3. fewer seeds per arm than the minimum (recorded ``train.min_seeds``, else 5 for the paper
   profile or scale and 3 below) or a test that is undefined -> **inconclusive**;
4. with the one-sided 95% bounds ``[L, U]`` of the paired difference:
   ``U < 0`` -> **worse**; ``U < g`` and mean <= 0 -> **no gain**; ``U < g`` and mean > 0 ->
   **smaller than claimed**; Holm-adjusted one-sided p < alpha (and ``U >= g``) -> **reproduced**;
   otherwise -> **inconclusive** (with the minimum detectable effect and the seeds and rows that
   would decide it).

Qualifiers: claimed languages missing from the runs make the verdict "... on k of n languages",
never "reproduced" (a gain there reads "gain on k of n languages"); summary-only files
(predictions null) turn "reproduced" into **unverifiable**. A claim of several parts is reproduced
when every part is; otherwise it takes its most negative part (worse, no gain, smaller than
claimed) or, failing that, is inconclusive (or the common verdict when all parts agree).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats as sps

from salt.tasks import TASKS

from .measure import PartData, is_paper_scale, measure, min_seeds, seed_order
from .power import Components, Plan, measured_components, plan, power_paired
from .registry import CLAIMS, REFERENCES, Claim, PaperValue, Reference
from .stats import (
    ALPHA,
    N_RESAMPLES,
    ClusteredMcNemar,
    ClusterInterval,
    SeedDifference,
    cluster_bootstrap,
    clustered_mcnemar,
    difference_matrix,
    holm,
    seed_difference,
)

NOISY_SHARE = 0.05  # dictionary-translation share below which code-switching is called noise
NEGATIVE = ("worse", "no gain", "smaller than claimed")


@dataclass(frozen=True)
class AnalysisPlan:
    """How every gain claim is tested; declared once, printed in the report."""

    alpha: float = ALPHA
    power_target: float = 0.8
    bootstrap_seed: int = 0
    n_resamples: int = N_RESAMPLES

    @property
    def bound_level(self) -> float:
        """Confidence of each one-sided bound (the interval's two ends)."""
        return 1 - self.alpha

    def lines(self) -> list[str]:
        """The plan as markdown bullet points."""
        a, b = self.alpha, f"{self.bound_level:.0%}"
        return [
            f"- Convention (said once): one-sided tests at alpha {a}; every interval is "
            f"[one-sided {b} lower bound, one-sided {b} upper bound] (a two-sided "
            f"{1 - 2 * a:.0%} interval). 'Rules out' names what lies beyond either bound.",
            "- Primary test per claimed number: the paired t-test over seeds "
            "(`scipy.stats.ttest_rel`; same seed in both arms) of the language-averaged "
            "accuracy, treatment minus control. Seeds that do not pair: Welch's test, said so.",
            "- Multiplicity: Holm across the parts of one claim (C1: XNLI and PAWS-X).",
            "- Minimum seeds per arm: the recorded `train.min_seeds`, else 5 for the paper "
            "profile or scale and 3 below; fewer seeds -> inconclusive.",
            "- Verdicts for a claimed gain g: U < 0 worse; U < g no gain (mean <= 0) or smaller "
            "than claimed (mean > 0); significant and U >= g reproduced; else inconclusive; any "
            "majority-class run -> not measurable; missing languages -> 'on k of n languages'; "
            "summary-only files -> unverifiable, never reproduced.",
            f"- Power: noncentral t at g with the measured seed sd; inconclusive verdicts give the "
            f"minimum detectable effect and the seeds for {self.power_target:.0%} power "
            "(`python -m claims plan`).",
            "- Per language and item level, translations are clustered by source item: a cluster "
            "bootstrap over source items and seed pairs (`scipy.stats.bootstrap`, percentile, "
            f"{self.n_resamples} resamples, seed {self.bootstrap_seed}) and a clustered McNemar "
            "per seed pair (Durkalski et al. 2003). Both are descriptive, not the decision.",
        ]


PLAN = AnalysisPlan()


@dataclass(frozen=True)
class LanguageDifference:
    """One language's difference: seed-paired mean and cluster-bootstrap interval (points)."""

    lang: str
    diff: float
    interval: ClusterInterval | None  # None when the files hold no predictions


@dataclass
class Part:
    """One claimed number measured against the runs."""

    paper: PaperValue
    verdict: str = "not run"
    reason: str = ""
    data: PartData | None = None
    test: SeedDifference | None = None
    p_adjusted: float = float("nan")
    power_at_claim: float = float("nan")
    planned: Plan | None = None
    min_seeds: tuple[int, str] = (0, "")
    pooled: ClusterInterval | None = None  # language-averaged, items and seed pairs resampled
    per_language: list[LanguageDifference] = field(default_factory=list)
    mcnemar: list[ClusteredMcNemar] = field(default_factory=list)
    levels: dict[str, Any] = field(default_factory=dict)

    def ruled_out(self) -> str:
        """What the one-sided bounds exclude, in words."""
        t = self.test
        if t is None or not t.defined:
            return "nothing"
        return f"gains above {t.high:+.2f} and below {t.low:+.2f}"


@dataclass
class ClaimOutcome:
    """The verdict on one claim, its parts and a one-line reason."""

    claim: Claim
    verdict: str
    reason: str
    parts: list[Part] = field(default_factory=list)
    ran_on: str = ""  # property claims: which model and data the check ran on


@dataclass(frozen=True)
class Flag:
    """A consistency finding between claimed numbers."""

    kind: str  # contradiction | note
    claims: tuple[str, ...]
    text: str


# --------------------------------------------------------------------------- one part


def gain_verdict(part: Part, g: float, alpha: float = ALPHA) -> tuple[str, str]:
    """Verdict and one-line reason of a claimed gain ``g`` (the module's rule, steps 1-4)."""
    data, t = part.data, part.test
    if data is None or t is None or t.design == "none":
        return "not run", "no runs of this task for both arms"
    if data.one_class:
        n_runs = len(data.treatment) + len(data.control)
        return "not measurable", (f"majority-class runs: {len(data.one_class)} of {n_runs} runs "
                                  "predict one class for every item (nothing learned)")
    need, _ = part.min_seeds
    n_t, n_c = len(data.treatment), len(data.control)
    if min(n_t, n_c) < need:
        return "inconclusive", f"{min(n_t, n_c)} seeds per arm, below the minimum {need}"
    if not t.defined:
        return "inconclusive", f"test undefined: {t.note}"
    if t.high < 0:
        return "worse", f"worse: the gain is below {t.high:+.2f} (one-sided 95%)"
    if t.high < g:
        if t.diff <= 0:
            return "no gain", f"no gain; gains above {t.high:+.2f} ruled out, claim {g:+.1f}"
        sig = "significant" if part.p_adjusted < alpha else "not significant"
        return "smaller than claimed", (f"gain {t.diff:+.2f} ({sig}) but below {t.high:+.2f}, "
                                        f"claim {g:+.1f}")
    if part.p_adjusted < alpha:
        return "reproduced", f"significant gain (Holm p {part.p_adjusted:.3g}) compatible with g"
    return "inconclusive", (f"neither a gain nor {g:+.1f} ruled out; power at g "
                            f"{part.power_at_claim:.2f}")


def _qualify(part: Part) -> None:
    data = part.data
    if data is None or part.verdict in ("not run", "not measurable"):
        return
    if part.verdict == "reproduced" and data.summary_only:
        part.verdict = "unverifiable"
        part.reason += "; summary-only files (no predictions) cannot be verified"
    if data.missing:
        k, n = len(data.languages), data.n_claimed
        part.verdict = (f"gain on {k} of {n} languages" if part.verdict == "reproduced"
                        else f"{part.verdict} on {k} of {n} languages")
        part.reason += f"; languages missing: {' '.join(data.missing)}"


def _mean_interval(x: Sequence[float], alpha: float) -> tuple[float, float] | None:
    x = np.asarray(x, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    ci = sps.ttest_1samp(x, 0.0).confidence_interval(1 - 2 * alpha)
    return float(ci.low), float(ci.high)


def _levels(part: Part, paper_scale: bool, alpha: float) -> None:
    """Absolute claims: claimed levels against each arm's interval, only at paper scale."""
    pv, data = part.paper, part.data
    if pv.treatment is None or data is None:
        return
    mt = float(np.mean(list(data.treatment.values())))
    mc = float(np.mean(list(data.control.values())))
    it = _mean_interval(list(data.treatment.values()), alpha)
    ic = _mean_interval(list(data.control.values()), alpha)
    part.levels = {"treatment_mean": mt, "control_mean": mc, "treatment_interval": it,
                   "control_interval": ic, "claimed_treatment": pv.treatment,
                   "claimed_control": pv.control, "checked": paper_scale}
    if not paper_scale:
        part.reason += (f"; levels {pv.treatment} vs {pv.control} not tested below paper scale "
                        f"(runs {mt:.1f} vs {mc:.1f})")
        return
    inside = it is not None and ic is not None and it[0] <= pv.treatment <= it[1] \
        and ic[0] <= pv.control <= ic[1]
    if part.verdict == "reproduced" and not inside:
        part.verdict = "inconclusive"
        part.reason = (f"gap reproduced but levels {pv.treatment} vs {pv.control} lie outside "
                       f"the runs' intervals ({mt:.1f} vs {mc:.1f})")


def _item_level(part: Part, plan_: AnalysisPlan) -> None:
    data = part.data
    if data is None:
        return
    pairs = data.pairs()
    if not pairs:
        return
    correct = [(ct, cc) for _, ct, cc in pairs]
    alpha, seed, n_res = plan_.alpha, plan_.bootstrap_seed, plan_.n_resamples
    part.pooled = cluster_bootstrap(difference_matrix(correct, data.languages), alpha, seed,
                                    n_res)
    for lang in data.languages:
        iv = cluster_bootstrap(difference_matrix(correct, (lang,)), alpha, seed, n_res)
        part.per_language.append(LanguageDifference(lang, iv.diff, iv))
    part.mcnemar = [clustered_mcnemar(ct, cc, seed=s) for s, ct, cc in pairs]


def evaluate_claim(claim: Claim, results: Any, plan_: AnalysisPlan = PLAN) -> list[Part]:
    """Every part of a statistical claim: test, Holm across parts, verdict, power, plan."""
    assert claim.arms is not None
    parts = []
    for pv in claim.paper:
        part = Part(pv, data=measure(results, pv, claim.arms))
        if part.data is not None:
            part.test = seed_difference(part.data.treatment, part.data.control, plan_.alpha)
            part.min_seeds = min_seeds(results, pv.task)
        parts.append(part)
    adjusted = holm([p.test.p_greater if p.test is not None else float("nan") for p in parts])
    paper_scale = is_paper_scale(results.scale)
    for pv, part, p_adj in zip(claim.paper, parts, adjusted, strict=True):
        part.p_adjusted = float(p_adj)
        comp: Components | None = measured_components(part.data) if part.data else None
        if comp is not None and comp.sd_diff > 0:
            part.power_at_claim = power_paired(part.paper.gain, comp.sd_diff, comp.n_seeds,
                                               plan_.alpha)
            part.planned = plan(part.paper.gain, comp, plan_.alpha, plan_.power_target)
        part.verdict, part.reason = gain_verdict(part, part.paper.gain, plan_.alpha)
        if part.test is not None and part.test.design == "unpaired":
            pairing = getattr(results, "pairing", None)
            why = getattr(pairing(pv.task, claim.arms.treatment, claim.arms.control), "reason",
                          None) if callable(pairing) else None
            part.reason += f"; {part.test.note}" + (f" ({why})" if why else "")
        if part.verdict == "inconclusive" and part.planned is not None:
            pl = part.planned
            seeds = "> 200" if pl.seeds_paired is None else str(pl.seeds_paired)
            rows = pl.rows_paired.get(pl.seeds_paired) if pl.seeds_paired else None
            part.reason += (f"; MDE {pl.mde_now_paired:+.2f} pt; {seeds} seed pairs for "
                            f"{plan_.power_target:.0%} power"
                            + (f" ({rows:,} test rows per language with test-set noise)"
                               if rows else ""))
        _levels(part, paper_scale, plan_.alpha)
        _qualify(part)
        if part.verdict != "not measurable":
            _item_level(part, plan_)
    return parts


def combine(verdicts: Sequence[str]) -> str:
    """A claim's verdict from its parts (see the module docstring)."""
    if not verdicts:
        return "not run"
    if len(set(verdicts)) == 1:
        return verdicts[0]
    for bad in NEGATIVE:
        if any(v.startswith(bad) for v in verdicts):
            return bad
    return "inconclusive"


# --------------------------------------------------------------------------- the audit


def dictionary_share(results: Any) -> float | None:
    """Mean share of code-switch substitutions that are dictionary translations, if reported."""
    values = [v for v in (_share(cs.get("dict_translation_share"))
                          for cs in codeswitch_blocks(results)) if v is not None]
    return float(np.mean(values)) if values else None


def _share(value: Any) -> float | None:
    """A fraction, or a mapping language -> fraction (its ``overall`` entry, else the mean)."""
    if isinstance(value, Mapping):
        if isinstance(value.get("overall"), int | float):
            return float(value["overall"])
        nums = [float(x) for x in value.values() if isinstance(x, int | float)]
        return float(np.mean(nums)) if nums else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _runs(results: Any) -> list[tuple[str, str, int | None, Any]]:
    return [(task, arm, seed, tr.runs[arm][seed]) for task, tr in sorted(results.tasks.items())
            for arm in sorted(tr.runs) for seed in sorted(tr.runs[arm], key=seed_order)]


def codeswitch_blocks(results: Any) -> list[Mapping[str, Any]]:
    """Every run's ``extra.codeswitch`` block (code-switch quality statistics)."""
    out = []
    for _, _, _, run in _runs(results):
        cs = (run.metrics.get("extra") or {}).get("codeswitch")
        if isinstance(cs, Mapping):
            out.append(cs)
    return out


def cut_budgets(results: Any) -> list[str]:
    """One line per budget that cut work short (``extra.budgets`` and ``extra.train.budget``)."""
    out = []
    for task, arm, seed, run in _runs(results):
        extra = run.metrics.get("extra") or {}
        budgets = list(extra.get("budgets") or [])
        train_budget = (extra.get("train") or {}).get("budget")
        if isinstance(train_budget, Mapping):
            budgets.append({"stage": "train", **train_budget})
        for b in budgets:
            if isinstance(b, Mapping) and b.get("cut_short"):
                out.append(f"{task}/{arm}/seed {seed}: {b.get('stage', '?')} stopped at "
                           f"{_num(b.get('used'))} of {_num(b.get('limit'))} "
                           f"{b.get('kind') or ''}".rstrip())
    return out


def _num(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return "unknown" if x is None else str(x)


def imported(results: Any) -> bool:
    """Whether the audited numbers came from an importer, not from this pipeline."""
    kinds = {((run.metrics["provenance"].get("origin") or {}).get("kind"))
             for _, _, _, run in _runs(results)}
    return "import" in kinds


@dataclass
class Audit:
    """The full audit: plan, claim outcomes, flags and what the report shows beside them."""

    results: Any
    plan: AnalysisPlan
    outcomes: list[ClaimOutcome]
    flags: list[Flag]
    codeswitch_share: float | None
    budgets: list[str]
    imported: bool
    properties_source: str | None = None


def _property_outcome(claim: Claim, props: Mapping[str, Mapping[str, Any]],
                      not_ours: bool) -> ClaimOutcome:
    if not_ours:
        return ClaimOutcome(claim, "not applicable", "the audited numbers were not produced by "
                            "this pipeline (provenance.origin.kind = import)")
    got = props.get(claim.id)
    if got is None:
        return ClaimOutcome(claim, "not run", "no property-check outcome supplied")
    if "ran_on" in got:
        ran_on = describe_ran_on(got["ran_on"])
    elif got.get("model") or got.get("data"):
        ran_on = describe_ran_on({"model": got.get("model"), "data": got.get("data")})
    else:
        ran_on = "model and data not recorded in the properties file"
    return ClaimOutcome(claim, str(got["verdict"]), str(got["evidence"]), ran_on=ran_on)


def describe_ran_on(value: Any) -> str:
    """One line for a properties file's ``ran_on``: a string, ``{model, data}`` or named
    settings of those (``{"bench": {...}, "written": {...}}``)."""
    if isinstance(value, Mapping):
        if "model" in value or "data" in value:
            data = value.get("data")
            if isinstance(data, list):
                data = (", ".join(map(str, data)) if len(data) <= 3 else
                        f"{', '.join(map(str, data[:3]))} and {len(data) - 3} more files")
            return f"model {value.get('model') or 'not recorded'}, data {data or 'not recorded'}"
        return "; ".join(f"{key}: {describe_ran_on(v)}" for key, v in value.items())
    return str(value)


def audit(results: Any, properties: Mapping[str, Mapping[str, Any]] | None = None, *,
          claims: Sequence[Claim] = CLAIMS, plan_: AnalysisPlan = PLAN,
          properties_source: str | None = None, alpha: float | None = None,
          seed: int | None = None) -> Audit:
    """Decide every claim. ``properties``: property-check outcomes by claim id; ``alpha`` and
    ``seed`` (bootstrap) override the plan's when given."""
    props = properties or {}
    if alpha is not None or seed is not None:
        plan_ = replace(plan_, alpha=plan_.alpha if alpha is None else alpha,
                        bootstrap_seed=plan_.bootstrap_seed if seed is None else seed)
    not_ours = imported(results)
    share = dictionary_share(results)
    outcomes = []
    for c in claims:
        if not c.is_statistical:
            outcomes.append(_property_outcome(c, props, not_ours))
            continue
        parts = evaluate_claim(c, results, plan_)
        verdict = combine([p.verdict for p in parts])
        reason = "; ".join(f"{p.paper.task}: {p.reason}" for p in parts) if len(parts) > 1 \
            else parts[0].reason
        if share is not None and share < NOISY_SHARE and c.arms is not None \
                and c.arms.treatment == "salt":
            reason += (f"; code-switching is {100 * share:.1f}% dictionary translations: this "
                       "tests mixup with noisy substitutions")
        outcomes.append(ClaimOutcome(c, verdict, reason, parts))
    return Audit(results, plan_, outcomes, consistency_flags(claims), share, cut_budgets(results),
                 not_ours, properties_source)


# --------------------------------------------------------------------------- consistency


def consistency_flags(claims: Sequence[Claim] = CLAIMS,
                      references: Sequence[Reference] = REFERENCES) -> list[Flag]:
    """Contradictions and notes between the claimed numbers of different claims."""
    flags: list[Flag] = []
    values = [(c.id, pv) for c in claims for pv in c.paper]
    for i, (ca, a) in enumerate(values):
        for cb, b in values[i + 1:]:
            if ca == cb or a.task != b.task:
                continue
            if a.languages == b.languages and not math.isclose(a.gain, b.gain, abs_tol=0.05):
                how = f" ({b.treatment} - {b.control})" if b.treatment is not None else ""
                flags.append(Flag("contradiction", (ca, cb), (
                    f"{ca} gives a {a.task} gain of {a.gain:+.1f} ({a.description}) but {cb} "
                    f"implies {b.gain:+.1f}{how} over the same {len(b.languages)} languages")))
            if a.languages != b.languages and math.isclose(a.gain, b.gain, abs_tol=0.05):
                flags.append(Flag("note", (ca, cb), (
                    f"{ca}'s {a.task} gain {a.gain:+.1f} ({a.description}) equals {cb}'s gap "
                    f"{b.gain:+.1f} ({b.description}): it may belong to {cb}'s languages")))
    flags += _implied_source_language(values)
    for cid, pv in values:
        for ref in references:
            if (ref.task == pv.task and pv.control is not None
                    and math.isclose(pv.control, ref.value, abs_tol=0.05)
                    and _ref_languages(ref) != pv.languages):
                mark = "verified" if ref.verified else "recalled, not verified"
                flags.append(Flag("note", (cid,), (
                    f"{cid}'s control {pv.control} ({pv.description}) equals the {ref.name} "
                    f"{ref.value} ({ref.source}; {mark}) over {len(_ref_languages(ref))} "
                    "languages: the language set may be mislabelled")))
    return flags


def _ref_languages(ref: Reference) -> tuple[str, ...]:
    return PaperValue(task=ref.task, languages=ref.languages, description=ref.name,
                      gain=0.0).languages


def _implied_source_language(values: Sequence[tuple[str, PaperValue]]) -> list[Flag]:
    """An all-language and a without-source average imply the source language's accuracy:
    x = n * all - (n - 1) * without, which must lie in [0, 100]."""
    out = []
    for ca, a in values:
        for cb, b in values:
            spec = TASKS[a.task]
            if (a.task != b.task or a.treatment is None or b.treatment is None
                    or a.languages != spec.languages or b.languages != spec.target_languages):
                continue
            n = len(spec.languages)
            implied = {"treatment": n * a.treatment - (n - 1) * b.treatment,
                       "control": n * a.control - (n - 1) * b.control}  # type: ignore[operator]
            text = (f"{ca} ({n}-language average) and {cb} (without {spec.source_language}) "
                    f"imply {spec.source_language} accuracy {implied['treatment']:.1f} "
                    f"(treatment) and {implied['control']:.1f} (control) "
                    f"({n} x {ca} - {n - 1} x {cb})")
            if any(not 0 <= v <= 100 for v in implied.values()):
                out.append(Flag("contradiction", (ca, cb),
                                text + ": above 100, so both averages cannot be right as labelled"))
            else:
                out.append(Flag("note", (ca, cb), text))
    return out
