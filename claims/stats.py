"""Statistics and verdicts for the claims (design.md §8), built on scipy.

Per task, SALT is compared with the baseline on one macro average per seed and arm, in percentage
points: a one-sided Welch t-test (SALT > baseline) with its confidence interval, the two-sided 95%
Welch CI of the difference, and a seeded percentile bootstrap CI as a second view. Per language the
same test, with Benjamini-Hochberg over languages. Item level: an exact McNemar test per seed pair
(SALT seed k vs baseline seed k), pooled over the claim's languages, as a qualifier only (items of
different languages are translations of each other, so they are not independent).

Verdict rule for a gain claim on one task (``gain_verdict``):

1. no metrics for the task -> **not run**;
2. fewer than 3 seeds in either arm -> **inconclusive** (never "holds");
3. Welch test undefined (both arms without variance) -> **inconclusive**;
4. one-sided p, Holm-adjusted across the claim's tasks, < alpha (0.05) and the two-sided 95% CI
   lower bound > 0 -> **holds**;
5. SALT mean <= baseline mean and the 95% CI excludes the paper's gain -> **fails**;
6. otherwise -> **inconclusive**.

A claim with several parts (C1: XNLI and PAWS-X) holds when every part holds, fails when any part
fails, is not run when no part ran, and is inconclusive otherwise. The Holm family is the parts of
one claim; C9 and C10 are families of one.

Absolute claims (C9, C10; ``absolute_verdict``) apply the gain rule to the paper's gap. A profile
other than ``paper`` never confirms a paper-scale absolute value: the verdict then speaks about the
direction at that scale only and says so. At paper scale the paper's absolute values must also lie
inside the 95% t-interval of each arm's mean for "holds"; otherwise a holding direction becomes
"inconclusive" (levels differ beyond seed noise).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from salt.tasks import TASKS

from .registry import CLAIMS, XTREME_MBERT_XNLI_AVG, Claim, Metric, PaperValue
from .results import ResultSet, TaskResults, metric_languages

ALPHA = 0.05
CONFIDENCE = 0.95
MIN_SEEDS = 3
N_RESAMPLES = 9999
NOISY_SHARE = 0.05  # dictionary-translation share below which code-switching is called noise
NAN = float("nan")


# --------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class Welch:
    """Welch t-test of SALT minus baseline."""

    statistic: float
    df: float
    p_greater: float  # one-sided p for SALT > baseline
    ci_greater_low: float  # lower bound of the one-sided CI at the same confidence
    ci95: tuple[float, float]  # two-sided CI of the difference


def welch_test(salt: Sequence[float], base: Sequence[float],
               confidence: float = CONFIDENCE) -> Welch:
    """One-sided Welch test SALT > baseline plus the two-sided CI; NaN where undefined."""
    salt, base = np.asarray(salt, float), np.asarray(base, float)
    if len(salt) < 2 or len(base) < 2 or (np.ptp(salt) == 0 and np.ptp(base) == 0):
        return Welch(NAN, NAN, NAN, NAN, (NAN, NAN))
    one = stats.ttest_ind(salt, base, equal_var=False, alternative="greater")
    two = stats.ttest_ind(salt, base, equal_var=False, alternative="two-sided")
    ci = two.confidence_interval(confidence)
    return Welch(float(one.statistic), float(one.df), float(one.pvalue),
                 float(one.confidence_interval(confidence).low), (float(ci.low), float(ci.high)))


@dataclass(frozen=True)
class Bootstrap:
    """Percentile bootstrap CI of the difference of means (seeded)."""

    low: float
    high: float
    seed: int
    n_resamples: int
    method: str = "percentile"


def _diff_of_means(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def bootstrap_diff(salt: Sequence[float], base: Sequence[float], seed: int,
                   confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES) -> Bootstrap:
    """Bootstrap CI of mean(SALT) - mean(baseline) from a fresh ``default_rng(seed)``.

    Percentile rather than BCa: with 3-5 seeds per arm BCa's jackknife acceleration is degenerate.
    With so few seeds this CI is too narrow; it is a second view, not the decision.
    """
    salt, base = np.asarray(salt, float), np.asarray(base, float)
    if len(salt) < 2 or len(base) < 2:
        return Bootstrap(NAN, NAN, seed, n_resamples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples when all seeds agree
        res = stats.bootstrap((salt, base), _diff_of_means, vectorized=True, paired=False,
                              n_resamples=n_resamples, confidence_level=confidence,
                              method="percentile", rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return Bootstrap(float(ci.low), float(ci.high), seed, n_resamples)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control).

    Sort ascending, multiply the i-th smallest (0-based) by m - i, take the running maximum so
    adjusted values never decrease, cap at 1, and put them back in the input order.
    """
    p = np.asarray(pvalues, float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def bh(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``).

    NaN entries (untestable languages) stay NaN and are left out of the family.
    """
    p = np.asarray(pvalues, float)
    out = np.full(len(p), NAN)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p from discordant counts (binomial test of b in b + c at 1/2)."""
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


# --------------------------------------------------------------------------- comparisons


def metric_label(metric: Metric) -> str:
    """Printable name of a metric: the key itself or the languages joined by commas."""
    return metric if isinstance(metric, str) else ",".join(metric)


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else NAN


@dataclass(frozen=True)
class Comparison:
    """SALT vs baseline on one per-seed macro average (points)."""

    label: str
    languages: tuple[str, ...]  # the languages averaged (evaluated ones)
    missing: tuple[str, ...]  # languages the metric names but the files lack
    salt: tuple[float, ...]  # per-seed scores
    base: tuple[float, ...]
    mean_salt: float
    sd_salt: float
    mean_base: float
    sd_base: float
    diff: float
    welch: Welch
    bootstrap: Bootstrap | None

    @property
    def n_salt(self) -> int:
        return len(self.salt)

    @property
    def n_base(self) -> int:
        return len(self.base)


def compare(salt: Sequence[float], base: Sequence[float], label: str = "",
            languages: tuple[str, ...] = (), missing: tuple[str, ...] = (), *,
            seed: int = 0, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
            with_bootstrap: bool = True) -> Comparison:
    """Welch (and optionally bootstrap) comparison of two arms of per-seed scores."""
    s, b = np.asarray(salt, float), np.asarray(base, float)
    ms = float(np.mean(s)) if len(s) else NAN
    mb = float(np.mean(b)) if len(b) else NAN
    return Comparison(
        label, languages, missing, tuple(map(float, s)), tuple(map(float, b)),
        ms, _sd(s), mb, _sd(b), ms - mb, welch_test(s, b, confidence),
        bootstrap_diff(s, b, seed, confidence, n_resamples) if with_bootstrap else None,
    )


@dataclass(frozen=True)
class LanguageComparison:
    """Per-language Welch comparison with its BH-adjusted one-sided p."""

    lang: str
    comparison: Comparison
    p_bh: float


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar for one seed pair, pooled over ``languages``."""

    seed: int
    salt_only: int  # items SALT gets right and the baseline wrong
    base_only: int  # items the baseline gets right and SALT wrong
    n_items: int
    p: float
    languages: tuple[str, ...]


def mcnemar_pairs(tr: TaskResults, languages: Sequence[str]) -> list[McNemar]:
    """McNemar per seed present in both arms, over languages where both files hold predictions."""
    out = []
    for seed in sorted(set(tr.seeds("salt")) & set(tr.seeds("baseline"))):
        rs, rb = tr.runs["salt"][seed], tr.runs["baseline"][seed]
        b = c = n = 0
        used = []
        for lang in languages:
            cs, cb = rs.correctness(lang), rb.correctness(lang)
            if cs is None or cb is None:
                continue
            used.append(lang)
            for uid, ok in cs.items():
                b += ok and not cb[uid]
                c += cb[uid] and not ok
            n += len(cs)
        if used:
            out.append(McNemar(seed, int(b), int(c), n, mcnemar_exact(int(b), int(c)),
                               tuple(used)))
    return out


@dataclass
class TaskAnalysis:
    """Everything computed for one task."""

    task: str
    languages: tuple[str, ...]
    seeds: dict[str, list[int]]
    averages: dict[str, Comparison]  # label -> comparison (all, without_en, under_resourced, ...)
    per_language: list[LanguageComparison]
    n_improved: int  # languages whose SALT mean exceeds the baseline mean
    n_significant: int  # of those, BH-adjusted one-sided p < alpha
    mcnemar: list[McNemar]

    def find(self, languages: tuple[str, ...]) -> Comparison | None:
        """The average comparison over exactly these languages, if computed."""
        for comp in self.averages.values():
            if comp.languages == languages:
                return comp
        return None


def analyse_task(tr: TaskResults, extra_metrics: Sequence[Metric] = (), *, alpha: float = ALPHA,
                 seed: int = 0, confidence: float = CONFIDENCE,
                 n_resamples: int = N_RESAMPLES) -> TaskAnalysis:
    """Averages (all / without English / under-resourced / claim subsets), per-language tests
    with BH, and McNemar qualifiers for one task."""
    averages: dict[str, Comparison] = {}
    for metric in ("all", "without_en", "under_resourced", *extra_metrics):
        langs = tr.metric_languages(metric)
        if not langs or any(c.languages == langs for c in averages.values()):
            continue
        averages[metric_label(metric)] = compare(
            tr.scores("salt", langs), tr.scores("baseline", langs), metric_label(metric), langs,
            tr.missing_languages(metric), seed=seed, confidence=confidence,
            n_resamples=n_resamples)
    comps = [compare(tr.language_scores("salt", lang), tr.language_scores("baseline", lang),
                     lang, (lang,), seed=seed, confidence=confidence, with_bootstrap=False)
             for lang in tr.languages]
    p_bh = bh([c.welch.p_greater for c in comps])
    per_language = [LanguageComparison(c.label, c, float(p)) for c, p in zip(comps, p_bh,
                                                                             strict=True)]
    return TaskAnalysis(
        task=tr.task, languages=tr.languages,
        seeds={s: tr.seeds(s) for s in ("baseline", "salt")},
        averages=averages, per_language=per_language,
        n_improved=sum(c.diff > 0 for c in comps),
        n_significant=sum(c.diff > 0 and p < alpha for c, p in zip(comps, p_bh, strict=True)),
        mcnemar=mcnemar_pairs(tr, tr.languages),
    )


# --------------------------------------------------------------------------- verdicts


def gain_verdict(comp: Comparison | None, p: float, paper_gain: float, alpha: float = ALPHA,
                 min_seeds: int = MIN_SEEDS) -> tuple[str, str]:
    """Verdict and reason for "SALT beats the baseline by about ``paper_gain``" (module rule)."""
    if comp is None or comp.n_salt == 0 or comp.n_base == 0:
        return "not run", "no metrics for this task and system pair"
    if comp.n_salt < min_seeds or comp.n_base < min_seeds:
        return "inconclusive", (f"fewer than {min_seeds} seeds per arm (SALT n={comp.n_salt}, "
                                f"baseline n={comp.n_base})")
    lo, hi = comp.welch.ci95
    if not (math.isfinite(p) and math.isfinite(lo)):
        return "inconclusive", "Welch test undefined (no variance in either arm)"
    if p < alpha and lo > 0:
        return "holds", (f"SALT > baseline: adjusted p={p:.3g} < {alpha}, 95% CI lower bound "
                         f"{lo:+.2f} > 0")
    if comp.diff <= 0 and not lo <= paper_gain <= hi:
        return "fails", (f"SALT mean <= baseline mean ({comp.diff:+.2f}) and the 95% CI "
                         f"[{lo:+.2f}, {hi:+.2f}] excludes the paper gain {paper_gain:+.1f}")
    return "inconclusive", (f"adjusted p={p:.3g}, 95% CI [{lo:+.2f}, {hi:+.2f}]: neither a "
                            "significant gain nor a refutation of the paper gain")


def _mean_ci(x: Sequence[float], confidence: float) -> tuple[float, float]:
    x = np.asarray(x, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return (NAN, NAN)
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def absolute_verdict(comp: Comparison | None, p: float, paper: PaperValue, profile: str,
                     alpha: float = ALPHA, confidence: float = CONFIDENCE,
                     min_seeds: int = MIN_SEEDS) -> tuple[str, str, dict[str, Any]]:
    """Verdict for an absolute claim (C9, C10): the gap by the gain rule, levels at paper scale.

    Returns (verdict, reason, levels) where levels holds each arm's rerun mean and 95% CI.
    """
    verdict, reason = gain_verdict(comp, p, paper.gain, alpha, min_seeds)
    if comp is None or verdict == "not run":
        return verdict, reason, {}
    ci_s, ci_b = _mean_ci(comp.salt, confidence), _mean_ci(comp.base, confidence)
    levels = {"salt_mean": comp.mean_salt, "salt_ci95": ci_s, "paper_salt": paper.salt,
              "baseline_mean": comp.mean_base, "baseline_ci95": ci_b,
              "paper_baseline": paper.baseline}
    rerun = f"rerun SALT {comp.mean_salt:.1f} vs baseline {comp.mean_base:.1f}"
    if profile != "paper":
        return verdict, (f"at {profile} scale, direction only: {reason}; {rerun}. A {profile}-"
                         f"scale number never confirms the paper-scale values {paper.salt} vs "
                         f"{paper.baseline}"), levels
    inside = all(lo <= v <= hi for v, (lo, hi) in ((paper.salt, ci_s), (paper.baseline, ci_b)))
    if verdict == "holds" and not inside:
        return "inconclusive", (f"direction holds but the paper levels {paper.salt} vs "
                                f"{paper.baseline} lie outside the rerun arms' 95% CIs "
                                f"({rerun})"), levels
    return verdict, f"{reason}; {rerun}", levels


def combine(verdicts: Sequence[str]) -> str:
    """Verdict of a claim from its parts: all hold -> holds, any fails -> fails, none ran ->
    not run, else inconclusive."""
    if not verdicts or all(v == "not run" for v in verdicts):
        return "not run"
    if any(v == "fails" for v in verdicts):
        return "fails"
    if all(v == "holds" for v in verdicts):
        return "holds"
    return "inconclusive"


# --------------------------------------------------------------------------- claims


@dataclass
class Part:
    """One paper value of a claim, measured against the rerun."""

    paper: PaperValue
    label: str
    verdict: str
    reason: str
    comparison: Comparison | None = None
    p_one_sided: float = NAN
    p_adjusted: float = NAN  # Holm within the claim (equal to p_one_sided for a family of one)
    paper_gain_in_ci: bool | None = None
    effect_ratio: float = NAN  # rerun gain / paper gain
    levels: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClaimOutcome:
    """The verdict on one claim with its evidence and scale."""

    claim: Claim
    verdict: str
    reason: str
    evidence: str
    scale: str
    parts: list[Part] = field(default_factory=list)


@dataclass(frozen=True)
class Flag:
    """A consistency finding between claims."""

    kind: str  # contradiction | note
    claims: tuple[str, ...]
    text: str


def evidence_text(comp: Comparison, p_adj: float) -> str:
    """Test name, statistic, CI and n in one line."""
    w, bs = comp.welch, comp.bootstrap
    s = (f"Welch one-sided t={w.statistic:.3f}, df={w.df:.1f}, p={w.p_greater:.3g}, "
         f"adj. p={p_adj:.3g}; diff {comp.diff:+.2f} pt, 95% CI [{w.ci95[0]:+.2f}, "
         f"{w.ci95[1]:+.2f}]")
    if bs is not None and math.isfinite(bs.low):
        s += f"; bootstrap 95% CI [{bs.low:+.2f}, {bs.high:+.2f}] (seed {bs.seed})"
    return s + f"; n={comp.n_salt} SALT + {comp.n_base} baseline seeds, {len(comp.languages)} langs"


def _statistical_outcome(claim: Claim, analyses: Mapping[str, TaskAnalysis], profile: str,
                         alpha: float, confidence: float) -> list[Part]:
    parts: list[Part] = []
    for pv in claim.paper:
        analysis = analyses.get(pv.task)
        comp = None
        if analysis is not None:
            langs = tuple(x for x in metric_languages(pv.task, pv.metric)
                          if x in analysis.languages)
            comp = analysis.find(langs)
            if comp is not None and (comp.n_salt == 0 or comp.n_base == 0):
                comp = None  # one arm missing: nothing to compare
        part = Part(pv, metric_label(pv.metric), "not run", "", comp)
        if comp is not None:
            part.p_one_sided = comp.welch.p_greater
            lo, hi = comp.welch.ci95
            if math.isfinite(lo):
                part.paper_gain_in_ci = bool(lo <= pv.gain <= hi)
            part.effect_ratio = comp.diff / pv.gain
        parts.append(part)
    testable = [i for i, pt in enumerate(parts) if math.isfinite(pt.p_one_sided)]
    for i, p_adj in zip(testable, holm([parts[i].p_one_sided for i in testable]), strict=True):
        parts[i].p_adjusted = float(p_adj)
    for pt in parts:
        if pt.paper.salt is not None:
            pt.verdict, pt.reason, pt.levels = absolute_verdict(
                pt.comparison, pt.p_adjusted, pt.paper, profile, alpha, confidence)
        else:
            pt.verdict, pt.reason = gain_verdict(pt.comparison, pt.p_adjusted, pt.paper.gain,
                                                 alpha)
            if pt.comparison is not None and pt.verdict != "not run" and profile != "paper":
                pt.reason = f"at {profile} scale: {pt.reason}"
    return parts


def dictionary_share(results: ResultSet) -> tuple[float, str] | None:
    """Overall share of code-switch substitutions that are dictionary translations, if reported.

    Looks in ``extra["codeswitch"]`` for ``dict_translation_share`` (or ``dictionary_share``,
    ``translation_share``): a fraction, or a mapping language -> fraction (its ``overall`` /
    ``all`` / ``mean`` entry if present, else the mean of the values). Returns the mean over runs
    and where it was found.
    """
    keys = ("dict_translation_share", "dictionary_translation_share", "dictionary_share",
            "translation_share")
    values, where = [], []
    for task, system, seed, extra in results.extras():
        cs = extra.get("codeswitch")
        if not isinstance(cs, Mapping):
            continue
        for key in keys:
            if key not in cs:
                continue
            v = cs[key]
            if isinstance(v, Mapping):
                pick = next((v[k] for k in ("overall", "all", "mean") if k in v), None)
                nums = [x for x in v.values() if isinstance(x, int | float)]
                v = pick if pick is not None else (float(np.mean(nums)) if nums else None)
            if isinstance(v, int | float) and not isinstance(v, bool):
                values.append(float(v))
                where.append(f"{task}/{system}/seed {seed}: extra.codeswitch.{key}")
            break
    if not values:
        return None
    fields = sorted({w.split(": ", 1)[1] for w in where})
    return float(np.mean(values)), f"mean over {len(values)} run(s), field {', '.join(fields)}"


def consistency_flags(claims: Sequence[Claim] = CLAIMS) -> list[Flag]:
    """Contradictions and notes between the paper numbers of different claims."""
    flags: list[Flag] = []
    values = [(c.id, pv) for c in claims for pv in c.paper]
    for i, (ca, a) in enumerate(values):
        for cb, b in values[i + 1:]:
            if ca == cb or a.task != b.task:
                continue
            la, lb = metric_languages(a.task, a.metric), metric_languages(b.task, b.metric)
            if la == lb and not math.isclose(a.gain, b.gain, abs_tol=0.05):
                how = f" ({b.salt} - {b.baseline})" if b.salt is not None else ""
                flags.append(Flag("contradiction", (ca, cb), (
                    f"{ca} gives a {a.task} gain of {a.gain:+.1f} ({a.description}) but {cb} "
                    f"implies {b.gain:+.1f}{how} over the same {len(lb)} languages")))
            if la != lb and math.isclose(a.gain, b.gain, abs_tol=0.05):
                flags.append(Flag("note", (ca, cb), (
                    f"{ca}'s {a.task} gain {a.gain:+.1f} ({a.description}) equals {cb}'s gap "
                    f"{b.gain:+.1f} ({b.description}): {ca}'s number may belong to {cb}'s "
                    "language set")))
    flags += _implied_english(values)
    for cid, pv in values:
        if (pv.task == "xnli" and pv.baseline is not None
                and math.isclose(pv.baseline, XTREME_MBERT_XNLI_AVG)
                and metric_languages(pv.task, pv.metric) != TASKS["xnli"].languages):
            flags.append(Flag("note", (cid,), (
                f"{cid}'s mBERT baseline {pv.baseline} ({pv.description}) equals the commonly "
                f"cited mBERT 15-language XNLI average {XTREME_MBERT_XNLI_AVG} of the XTREME "
                "paper (Hu et al. 2020; recalled, not verified here): the 'without English' "
                "label may be a mislabel")))
    return flags


def _implied_english(values: Sequence[tuple[str, PaperValue]]) -> list[Flag]:
    """An all-language and a without-English average of one task imply English accuracy:
    en = n_all * all - (n_all - 1) * without_en, which must lie in [0, 100]."""
    out = []
    for ca, a in values:
        for cb, b in values:
            if (a.task != b.task or a.salt is None or b.salt is None
                    or metric_languages(a.task, a.metric) != TASKS[a.task].languages
                    or metric_languages(b.task, b.metric) != TASKS[b.task].target_languages):
                continue
            n = len(TASKS[a.task].languages)
            implied = {arm: n * getattr(a, arm) - (n - 1) * getattr(b, arm)
                       for arm in ("salt", "baseline")}
            bad = {k: v for k, v in implied.items() if not 0 <= v <= 100}
            text = (f"{ca} ({n}-language average) and {cb} (without English) together imply "
                    f"English accuracy SALT {implied['salt']:.1f}, mBERT "
                    f"{implied['baseline']:.1f} ({n} x {ca} - {n - 1} x {cb})")
            if bad:
                out.append(Flag("contradiction", (ca, cb),
                                text + ": above 100, so the two averages cannot both be right "
                                       "as labelled"))
            else:
                out.append(Flag("note", (ca, cb), text))
    return out


@dataclass
class Audit:
    """The full audit: per-task analyses, claim outcomes, flags and scale."""

    results: ResultSet
    analyses: dict[str, TaskAnalysis]
    outcomes: list[ClaimOutcome]
    flags: list[Flag]
    alpha: float
    confidence: float
    seed: int
    n_resamples: int
    codeswitch_share: tuple[float, str] | None
    properties_source: str | None = None


def _scale_text(results: ResultSet, tasks: Sequence[str]) -> str:
    sc = results.scale
    parts = [f"profile={sc.profile}", f"model={sc.model}"]
    for t in tasks:
        if t in sc.n_per_arm:
            n = sc.n_per_arm[t]
            parts.append(f"{t}: sizes {sc.sizes[t]}, seeds SALT {sc.seeds[t]['salt']} / "
                         f"baseline {sc.seeds[t]['baseline']} (n={n['salt']}+{n['baseline']})")
    parts.append(f"commit {', '.join(sc.git_commits)}")
    return "; ".join(parts)


def audit(results: ResultSet, properties: Mapping[str, Mapping[str, str]] | None = None, *,
          alpha: float = ALPHA, confidence: float = CONFIDENCE, seed: int = 0,
          n_resamples: int = N_RESAMPLES, claims: Sequence[Claim] = CLAIMS,
          properties_source: str | None = None) -> Audit:
    """Analyse every task and decide every claim. ``properties`` are property-check outcomes
    ``{claim_id: {"verdict", "evidence"}}``; claims without one are "not run"."""
    properties = properties or {}
    extra: dict[str, list[Metric]] = {}
    for c in claims:
        for pv in c.paper:
            extra.setdefault(pv.task, []).append(pv.metric)
    analyses = {task: analyse_task(tr, extra.get(task, ()), alpha=alpha, seed=seed,
                                   confidence=confidence, n_resamples=n_resamples)
                for task, tr in results.tasks.items()}
    share = dictionary_share(results)
    profile = results.scale.profile
    outcomes = []
    for c in claims:
        if not c.is_statistical:
            got = properties.get(c.id, {"verdict": "not run",
                                        "evidence": "no property-check outcome supplied"})
            outcomes.append(ClaimOutcome(c, got["verdict"], got["evidence"], got["evidence"],
                                         "property check (no metrics scale)"))
            continue
        parts = _statistical_outcome(c, analyses, profile, alpha, confidence)
        verdict = combine([p.verdict for p in parts])
        reason = "; ".join(f"{p.paper.task}: {p.verdict} ({p.reason})" for p in parts)
        if c.id == "C1" and share is not None and share[0] < NOISY_SHARE:
            reason += (f". Code-switch substitutions are dictionary translations only "
                       f"{100 * share[0]:.1f}% of the time (< {100 * NOISY_SHARE:.0f}%): at this "
                       "scale C1 tests 'mixup with noisy substitutions', not SALT's "
                       "self-distilled translations")
        evidence = " | ".join(f"{p.paper.task} [{p.label}]: " + evidence_text(p.comparison,
                                                                               p.p_adjusted)
                              for p in parts if p.comparison is not None) or "no metrics"
        outcomes.append(ClaimOutcome(c, verdict, reason, evidence,
                                     _scale_text(results, [p.paper.task for p in parts]), parts))
    return Audit(results, analyses, outcomes, consistency_flags(claims), alpha, confidence, seed,
                 n_resamples, share, properties_source)

