"""The tests behind the verdicts, built on scipy.stats; nothing here knows about claims.

- ``seed_difference``: the primary test. The two arms' per-seed scores (points) are paired by seed
  (same seed: same initial head, same batch order) and compared with ``scipy.stats.ttest_rel``;
  when the seeds do not pair across arms the fallback is Welch's ``ttest_ind`` and the reason is
  recorded. One convention throughout: one-sided tests at ``alpha`` and the interval whose two ends
  are the one-sided ``1 - alpha`` bounds (a two-sided ``1 - 2 alpha`` interval; 90% for 0.05).
- ``holm``: family-wise adjustment across the parts of one claim.
- ``clustered_mcnemar``: item-level McNemar for one seed pair, clustered by source item (the
  translations of one item share the line in their uid ``{task}/{split}-{lang}:{line}``), after
  Durkalski et al. (2003): ``X2 = (sum_i (b_i - c_i))^2 / sum_i (b_i - c_i)^2``, 1 df.
- ``cluster_bootstrap``: percentile interval of the macro-averaged difference from
  ``scipy.stats.bootstrap``, resampling source items (with all their translations) and seed pairs
  independently, so it carries test-set noise as well as seed noise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

ALPHA = 0.05
N_RESAMPLES = 9999
NAN = float("nan")


def source_item(uid: str) -> str:
    """Cluster key of an item: the line shared by all translations of one source item."""
    head, sep, line = uid.rpartition(":")
    if not sep or not head or not line:
        raise ValueError(f"uid {uid!r} is not of the form '{{task}}/{{split}}-{{lang}}:{{line}}'")
    return line


# --------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class SeedDifference:
    """Treatment minus control over seeds (points), with the one-sided tests and bounds."""

    design: str  # "paired" (ttest_rel) | "unpaired" (Welch ttest_ind) | "none"
    seeds: tuple[int, ...]  # paired seeds (paired) or the union (unpaired)
    treatment: tuple[float, ...]  # per-seed scores in seed order
    control: tuple[float, ...]
    diff: float  # mean paired difference (paired) or difference of means
    sd: float  # sd of the paired differences (paired) or pooled-free Welch se * sqrt(n)
    n: int  # pairs (paired) or the smaller arm (unpaired)
    df: float
    statistic: float
    p_greater: float  # one-sided p for treatment > control
    p_less: float  # one-sided p for treatment < control
    low: float  # one-sided (1 - alpha) lower bound
    high: float  # one-sided (1 - alpha) upper bound
    note: str = ""  # why the design fell back, or why the test is undefined

    @property
    def defined(self) -> bool:
        return math.isfinite(self.p_greater) and math.isfinite(self.low)


def _undefined(design: str, seeds: tuple[int, ...], t: np.ndarray, c: np.ndarray, diff: float,
               n: int, note: str) -> SeedDifference:
    return SeedDifference(design, seeds, tuple(map(float, t)), tuple(map(float, c)), diff, NAN, n,
                          NAN, NAN, NAN, NAN, NAN, NAN, note)


def seed_difference(treatment: Mapping[int, float], control: Mapping[int, float],
                    alpha: float = ALPHA) -> SeedDifference:
    """Paired t-test over seeds present in both arms; Welch when the seed sets differ."""
    st = sorted(treatment, key=lambda s: (s is None, s or 0))
    sc = sorted(control, key=lambda s: (s is None, s or 0))
    if not st or not sc:
        return _undefined("none", (), np.empty(0), np.empty(0), NAN, 0, "an arm has no runs")
    level = 1 - 2 * alpha
    if st == sc and None not in st:
        t = np.array([treatment[s] for s in st], float)
        c = np.array([control[s] for s in st], float)
        d = t - c
        if len(d) < 2:
            return _undefined("paired", tuple(st), t, c, float(d.mean()), len(d),
                              "one seed pair: no variance estimate")
        if np.ptp(d) == 0:
            return _undefined("paired", tuple(st), t, c, float(d.mean()), len(d),
                              "the paired differences do not vary across seeds")
        two = stats.ttest_rel(t, c)
        ci = two.confidence_interval(level)
        return SeedDifference(
            "paired", tuple(st), tuple(map(float, t)), tuple(map(float, c)), float(d.mean()),
            float(d.std(ddof=1)), len(d), float(two.df), float(two.statistic),
            float(stats.ttest_rel(t, c, alternative="greater").pvalue),
            float(stats.ttest_rel(t, c, alternative="less").pvalue),
            float(ci.low), float(ci.high))
    t = np.array([treatment[s] for s in st], float)
    c = np.array([control[s] for s in sc], float)
    note = (f"seeds do not pair across arms (treatment {st}, control {sc}): unpaired Welch test "
            "instead of the paired test")
    diff = float(t.mean() - c.mean())
    if len(t) < 2 or len(c) < 2 or (np.ptp(t) == 0 and np.ptp(c) == 0):
        seeds = tuple(x for x in dict.fromkeys(st + sc) if x is not None)
        return _undefined("unpaired", seeds, t, c, diff, min(len(t), len(c)),
                          note + "; no variance estimate")
    two = stats.ttest_ind(t, c, equal_var=False)
    ci = two.confidence_interval(level)
    se = math.sqrt(t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c))
    n = min(len(t), len(c))
    return SeedDifference(
        "unpaired", tuple(x for x in dict.fromkeys(st + sc) if x is not None),
        tuple(map(float, t)), tuple(map(float, c)),
        diff, se * math.sqrt(n), n, float(two.df), float(two.statistic),
        float(stats.ttest_ind(t, c, equal_var=False, alternative="greater").pvalue),
        float(stats.ttest_ind(t, c, equal_var=False, alternative="less").pvalue),
        float(ci.low), float(ci.high), note)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries stay NaN and are left out of the family.

    Sort ascending, multiply the i-th smallest (0-based) by m - i, take the running maximum so
    adjusted values never decrease, cap at 1, and put them back in the input order.
    """
    p = np.asarray(pvalues, float)
    out = np.full(len(p), NAN)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m:
        order = ok[np.argsort(p[ok])]
        stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
        out[order] = np.minimum(stepped, 1.0)
    return out


# --------------------------------------------------------------------------- items

Correct = Mapping[str, Mapping[str, bool]]
"""Per language: uid -> whether the prediction was right."""


@dataclass(frozen=True)
class ClusteredMcNemar:
    """Item-level comparison of one seed pair, clustered by source item."""

    seed: int
    treatment_only: int  # items the treatment gets right and the control wrong
    control_only: int
    n_items: int  # items (all translations)
    n_clusters: int  # source items
    statistic: float
    p: float  # two-sided, chi-square with 1 df
    languages: tuple[str, ...]


def clustered_mcnemar(treatment: Correct, control: Correct, seed: int = 0) -> ClusteredMcNemar:
    """Durkalski's clustered McNemar over the languages both runs predicted."""
    per_cluster: dict[str, int] = {}
    b = c = n = 0
    langs = tuple(lang for lang in treatment if lang in control)
    for lang in langs:
        ct, cc = treatment[lang], control[lang]
        for uid, ok in ct.items():
            other = cc[uid]
            key = source_item(uid)
            delta = int(ok and not other) - int(other and not ok)
            per_cluster[key] = per_cluster.get(key, 0) + delta
            b += ok and not other
            c += other and not ok
            n += 1
    diffs = np.array(list(per_cluster.values()), float)
    denom = float(np.sum(diffs ** 2))
    stat = float(diffs.sum() ** 2 / denom) if denom > 0 else 0.0
    p = float(stats.chi2.sf(stat, 1)) if denom > 0 else 1.0
    return ClusteredMcNemar(seed, int(b), int(c), n, len(per_cluster), stat, p, langs)


def difference_matrix(pairs: Sequence[tuple[Correct, Correct]],
                      languages: Sequence[str]) -> np.ndarray:
    """(seed pairs, source items) matrix of each item's contribution to the macro-averaged
    difference in points: sum over languages of (right_t - right_c) / (n_items_lang * n_langs).

    A row sums to that seed pair's macro-averaged difference. Every run must hold the same uids.
    """
    clusters: dict[str, int] = {}
    for lang in languages:
        for uid in pairs[0][0][lang]:
            clusters.setdefault(source_item(uid), len(clusters))
    out = np.zeros((len(pairs), len(clusters)))
    for row, (ct, cc) in enumerate(pairs):
        for lang in languages:
            m = len(ct[lang])
            for uid, ok in ct[lang].items():
                out[row, clusters[source_item(uid)]] += (
                    (int(ok) - int(cc[lang][uid])) * 100.0 / (m * len(languages)))
    return out


@dataclass(frozen=True)
class ClusterInterval:
    """Cluster-bootstrap interval of the macro-averaged difference (points)."""

    diff: float
    low: float
    high: float
    n_pairs: int
    n_clusters: int
    seed: int
    n_resamples: int
    note: str = ""


def cluster_bootstrap(matrix: np.ndarray, alpha: float = ALPHA, seed: int = 0,
                      n_resamples: int = N_RESAMPLES) -> ClusterInterval:
    """Percentile interval (1 - 2 alpha) of the mean row sum of ``matrix`` (seed pairs x source
    items), resampling items and seed pairs independently with ``scipy.stats.bootstrap``."""
    matrix = np.asarray(matrix, float)
    n_pairs, n_items = matrix.shape
    diff = float(matrix.sum(axis=1).mean()) if matrix.size else NAN
    if n_items < 2:
        return ClusterInterval(diff, NAN, NAN, n_pairs, n_items, seed, n_resamples,
                               "fewer than two source items")
    if np.ptp(matrix) == 0:
        return ClusterInterval(diff, diff, diff, n_pairs, n_items, seed, n_resamples,
                               "every item has the same difference in every seed pair")

    def statistic(*samples: Any, axis: int = -1) -> np.ndarray:
        items = np.asarray(samples[0])  # (..., n_items) resampled item indices
        rows = (np.asarray(samples[1]) if len(samples) > 1
                else np.broadcast_to(np.arange(n_pairs), (*items.shape[:-1], n_pairs)))
        sums = matrix[rows[..., :, None], items[..., None, :]].sum(axis=-1)  # (..., n_pairs)
        return sums.mean(axis=-1)

    data: tuple[np.ndarray, ...] = (np.arange(n_items),)
    if n_pairs >= 2:
        data += (np.arange(n_pairs),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples warn; the interval is still valid
        res = stats.bootstrap(data, statistic, n_resamples=n_resamples, vectorized=True,
                              paired=False, batch=200, confidence_level=1 - 2 * alpha,
                              method="percentile", rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    note = "" if n_pairs >= 2 else "one seed pair: items resampled only"
    return ClusterInterval(diff, float(ci.low), float(ci.high), n_pairs, n_items, seed,
                           n_resamples, note)


def __getattr__(name: str) -> Any:
    """``claims.stats.audit`` / ``Audit`` moved to ``claims.verdicts``; kept reachable here."""
    if name in ("audit", "Audit"):
        from . import verdicts

        return getattr(verdicts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
