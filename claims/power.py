"""Closed-form power of the one-sided seed t-tests, and what it takes to decide a claim.

Model of one claimed number (a macro average, points): the estimated gain over ``n`` seeds on a
test set of ``m`` rows per language has variance ``sd_seed^2 / n + item_var / m``:

- ``sd_seed``: seed-to-seed sd of the paired differences (paired design) or of each arm
  (unpaired), as measured on a fixed test set;
- ``item_var / m``: test-set binomial noise of the macro-averaged difference, ``item_var`` being
  the variance over source items of an item's difference (averaged over its translations, so the
  clustering of translations is in it). The verdict's t-test conditions on the test set
  (``item_var`` = 0); the plan adds it to say how many rows a population-level answer needs.

Power is the noncentral t (``scipy.stats.nct``) with ``n - 1`` df (paired) or the Welch df
(unpaired, equal ``n`` per arm) and noncentrality ``g / se``. ``python -m claims plan`` prints the
seeds and rows per language needed for the target power; ``add_arguments`` / ``run`` are its
command-line entry points.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from .stats import ALPHA, difference_matrix

TARGET_POWER = 0.8
MAX_SEEDS = 200
MAX_ROWS = 10_000_000


def _power(effect: float, se: float, df: float, alpha: float) -> float:
    if not (se > 0 and df > 0 and math.isfinite(se)):
        return float("nan")
    crit = stats.t.ppf(1 - alpha, df)
    return float(stats.nct.sf(crit, df, effect / se))


def power_paired(effect: float, sd_diff: float, n: int, alpha: float = ALPHA,
                 item_var: float = 0.0, rows: int | None = None) -> float:
    """Power of the one-sided paired t-test with ``n`` seed pairs to detect ``effect``."""
    if n < 2:
        return float("nan")
    noise = item_var / rows if rows else 0.0
    return _power(effect, math.sqrt(sd_diff ** 2 / n + noise), n - 1, alpha)


def welch_df(sd_t: float, sd_c: float, n: int) -> float:
    """Welch-Satterthwaite df for two arms of ``n`` seeds each."""
    vt, vc = sd_t ** 2, sd_c ** 2
    if vt + vc == 0:
        return float("nan")
    return (vt + vc) ** 2 * (n - 1) / (vt ** 2 + vc ** 2)


def power_unpaired(effect: float, sd_t: float, sd_c: float, n: int, alpha: float = ALPHA,
                   item_var: float = 0.0, rows: int | None = None) -> float:
    """Power of the one-sided Welch t-test with ``n`` seeds per arm to detect ``effect``."""
    if n < 2:
        return float("nan")
    noise = item_var / rows if rows else 0.0
    return _power(effect, math.sqrt((sd_t ** 2 + sd_c ** 2) / n + noise),
                  welch_df(sd_t, sd_c, n), alpha)


def mde(power_at: Callable[[float], float], target: float = TARGET_POWER) -> float:
    """Smallest effect whose power reaches ``target`` (``power_at`` increasing in the effect)."""
    if not math.isfinite(power_at(1.0)):
        return float("nan")
    hi = 1.0
    while power_at(hi) < target:
        hi *= 2
        if hi > 1e6:
            return float("inf")
    return float(optimize.brentq(lambda g: power_at(g) - target, 0.0, hi, xtol=1e-6))


def smallest(power_at: Callable[[int], float], target: float = TARGET_POWER, start: int = 2,
             limit: int = MAX_SEEDS) -> int | None:
    """Smallest integer ``k >= start`` with ``power_at(k) >= target`` (power increasing in k),
    by doubling then bisection; None when not reached by ``limit``."""
    hi = start
    while not power_at(hi) >= target:
        if hi >= limit:
            return None
        hi = min(2 * hi, limit)
    lo = max(start, hi // 2)
    if power_at(lo) >= target:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power_at(mid) >= target else (mid, hi)
    return hi


@dataclass(frozen=True)
class Components:
    """Variance components of one claimed number (points)."""

    sd_diff: float  # seed-to-seed sd of the paired differences
    sd_treatment: float  # seed-to-seed sd of each arm
    sd_control: float
    item_var: float  # variance over source items of an item's difference (points^2 per row)
    rows: int  # test rows per language the components were measured at
    n_seeds: int  # seed pairs they were measured from
    source: str  # "measured" or "assumed"


@dataclass(frozen=True)
class Plan:
    """What deciding ``effect`` takes, at the measured (or assumed) variances."""

    effect: float
    alpha: float
    target: float
    components: Components
    power_now_paired: float  # with the seeds and rows of the components
    power_now_unpaired: float
    mde_now_paired: float
    seeds_paired: int | None  # seed pairs needed on the same test set
    seeds_unpaired: int | None  # seeds per arm needed on the same test set
    rows_paired: dict[int, int | None]  # seeds -> rows per language for the population answer
    rows_unpaired: dict[int, int | None]


def plan(effect: float, comp: Components, alpha: float = ALPHA,
         target: float = TARGET_POWER) -> Plan:
    """Power now, minimum detectable effect, and the seeds / rows needed for ``target`` power."""
    n = comp.n_seeds

    def paired(k: int, rows: int | None = None, item_var: float = 0.0) -> float:
        return power_paired(effect, comp.sd_diff, k, alpha, item_var, rows)

    def unpaired(k: int, rows: int | None = None, item_var: float = 0.0) -> float:
        return power_unpaired(effect, comp.sd_treatment, comp.sd_control, k, alpha, item_var,
                              rows)

    seeds_p = smallest(paired, target)
    seeds_u = smallest(unpaired, target)
    grid = sorted({k for k in (n, 5, 10, 20, seeds_p, seeds_u) if k and k >= 2})
    rows_p = {k: smallest(lambda m, k=k: paired(k, m, comp.item_var), target, 1, MAX_ROWS)
              for k in grid}
    rows_u = {k: smallest(lambda m, k=k: unpaired(k, m, comp.item_var), target, 1, MAX_ROWS)
              for k in grid}
    return Plan(effect, alpha, target, comp, paired(n), unpaired(n),
                mde(lambda g: power_paired(g, comp.sd_diff, n, alpha), target) if n >= 2
                else float("nan"),
                seeds_p, seeds_u, rows_p, rows_u)


def measured_components(part: object) -> Components | None:
    """Variance components of a ``claims.measure.PartData`` (paired seeds needed)."""
    from .measure import PartData

    assert isinstance(part, PartData)
    seeds = sorted(set(part.treatment) & set(part.control) - {None})
    if len(seeds) < 2:
        return None
    t = np.array([part.treatment[s] for s in seeds])
    c = np.array([part.control[s] for s in seeds])
    pairs = part.pairs()
    known = [n for n in part.test_rows.values() if n is not None]  # None: unknown (imports)
    rows = min(known) if known else 0
    item_var = 0.0
    if pairs:
        matrix = difference_matrix([(ct, cc) for _, ct, cc in pairs], part.languages)
        per_item = matrix.mean(axis=0) * matrix.shape[1]  # an item's difference, points
        item_var = float(per_item.var(ddof=1)) if len(per_item) > 1 else 0.0
    return Components(float(np.std(t - c, ddof=1)), float(np.std(t, ddof=1)),
                      float(np.std(c, ddof=1)), item_var, rows, len(seeds), "measured")


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m claims plan``."""
    parser.add_argument("results_dir", nargs="?", default=None,
                        help="metrics folder to measure the variances from (else give --sd-diff, "
                             "--sd-arm, --item-var and --rows)")
    parser.add_argument("--claim", required=True, help="claim id, e.g. C1")
    parser.add_argument("--claims", default=None, help="claims file (default: SALT's)")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="one-sided significance level")
    parser.add_argument("--power", type=float, default=TARGET_POWER, help="target power")
    parser.add_argument("--sd-diff", type=float, default=None,
                        help="assumed seed-to-seed sd of the paired differences (points)")
    parser.add_argument("--sd-arm", type=float, default=None,
                        help="assumed seed-to-seed sd of one arm (points)")
    parser.add_argument("--item-var", type=float, default=None,
                        help="assumed variance over source items of an item's difference "
                             "(points^2; 0 for a fixed test set)")
    parser.add_argument("--rows", type=int, default=None, help="test rows per language now")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per arm now")


def _fmt_n(k: int | None, limit: int) -> str:
    return f"> {limit:,}" if k is None else f"{k:,}"


def format_plan(p: Plan, label: str) -> list[str]:
    """Printable lines of one plan."""
    from tabulate import tabulate

    c = p.components
    lines = [f"{label}: claimed gain {p.effect:+.2f} pt, one-sided alpha {p.alpha}, target power "
             f"{p.target:.0%}",
             f"  {c.source} variances: sd of paired differences {c.sd_diff:.2f} pt, sd per arm "
             f"{c.sd_treatment:.2f} / {c.sd_control:.2f} pt, item variance {c.item_var:.0f} pt^2 "
             f"({c.n_seeds} seeds, {c.rows} rows per language)",
             f"  now: power {p.power_now_paired:.2f} paired, {p.power_now_unpaired:.2f} unpaired; "
             f"minimum detectable effect {p.mde_now_paired:+.2f} pt (paired)",
             f"  seeds needed on this test set: {_fmt_n(p.seeds_paired, MAX_SEEDS)} paired, "
             f"{_fmt_n(p.seeds_unpaired, MAX_SEEDS)} per arm unpaired"]
    rows = [[k, _fmt_n(p.rows_paired[k], MAX_ROWS), _fmt_n(p.rows_unpaired[k], MAX_ROWS)]
            for k in p.rows_paired]
    table = tabulate(rows, headers=["seeds", "rows/lang paired", "rows/lang unpaired"],
                     tablefmt="github", disable_numparse=True)
    lines += ["  test rows per language for a population-level answer (test-set noise included):"]
    lines += ["  " + x for x in table.splitlines()]
    return lines


def run(args: argparse.Namespace) -> int:
    """``python -m claims plan``: print the plan of each part of ``--claim``; 2 on bad input."""
    from .registry import ClaimsError, get_claim, load_claims

    try:
        claims = load_claims(args.claims)
        claim = get_claim(args.claim, claims)
    except (ClaimsError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not claim.is_statistical or claim.arms is None:
        print(f"error: claim {claim.id} is a {claim.kind} claim: no seeds to plan",
              file=sys.stderr)
        return 2
    results = None
    if args.results_dir is not None:
        from .results import load_results

        try:
            results = load_results(args.results_dir)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    else:
        need = {"--sd-diff": args.sd_diff, "--sd-arm": args.sd_arm, "--item-var": args.item_var,
                "--rows": args.rows, "--seeds": args.seeds}
        lacking = [k for k, v in need.items() if v is None]
        if lacking:
            print(f"error: without a metrics folder give {', '.join(lacking)} (assumed values are "
                  "never filled in)", file=sys.stderr)
            return 2
    from .measure import measure

    for pv in claim.paper:
        label = f"{claim.id} {pv.task} [{pv.description}]"
        if results is None:
            comp = Components(args.sd_diff, args.sd_arm, args.sd_arm, args.item_var, args.rows,
                              args.seeds, "assumed")
        else:
            part = measure(results, pv, claim.arms)
            if part is not None and part.one_class:
                print(f"{label}: not measurable: majority-class runs ({', '.join(part.one_class)}"
                      ") predict one class for every item; no variance to plan from")
                continue
            comp = measured_components(part) if part is not None else None
            if comp is not None and comp.sd_diff == 0:
                print(f"{label}: not measurable: the paired differences do not vary across "
                      "seeds (degenerate runs)")
                continue
            if comp is None:
                print(f"{label}: not measurable from {args.results_dir} (needs at least two "
                      "seeds of both arms with matching seeds)")
                continue
        for line in format_plan(plan(pv.gain, comp, args.alpha, args.power), label):
            print(line)
    return 0
