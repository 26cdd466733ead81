"""What the verdicts and the power analysis read from a validated metrics folder.

This is the one place ``claims`` reads runs out of ``claims.results`` (which decides what can be
compared); the rest works on the plain numbers gathered here. Scores are in percentage points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .registry import Arms, PaperValue
from .stats import Correct

DEFAULT_MIN_SEEDS = {"paper": 5, "other": 3}


@dataclass(frozen=True)
class PartData:
    """One claimed number's evidence: per-seed macro averages and item correctness per arm."""

    task: str
    languages: tuple[str, ...]  # claimed languages the runs evaluated (canonical order)
    missing: tuple[str, ...]  # claimed languages the runs lack
    treatment: dict[int, float]  # seed -> macro average over ``languages`` (points)
    control: dict[int, float]
    correct_treatment: dict[int, Correct | None]  # None: summary-only file (no predictions)
    correct_control: dict[int, Correct | None]
    one_class: tuple[str, ...] = ()  # runs predicting one class for every item ("arm/seed N")
    test_rows: dict[str, int | None] = field(default_factory=dict)  # language -> items (None: unknown)

    @property
    def n_claimed(self) -> int:
        return len(self.languages) + len(self.missing)

    @property
    def summary_only(self) -> bool:
        return any(v is None for v in (*self.correct_treatment.values(),
                                       *self.correct_control.values()))

    def pairs(self) -> list[tuple[int, Correct, Correct]]:
        """(seed, treatment, control) correctness of the seeds both arms ran, with predictions."""
        out = []
        common = set(self.correct_treatment) & set(self.correct_control) - {None}
        for seed in sorted(common):
            ct, cc = self.correct_treatment[seed], self.correct_control[seed]
            if ct is not None and cc is not None:
                out.append((seed, ct, cc))
        return out


def _correctness(run: Any, languages: Sequence[str]) -> Correct | None:
    out = {}
    for lang in languages:
        got = run.correctness(lang)
        if got is None:
            return None
        out[lang] = got
    return out


def _one_class(run: Any, languages: Sequence[str]) -> bool:
    preds = run.metrics.get("predictions") or {}
    seen = {y for lang in languages for y in (preds.get(lang) or {}).get("predicted", [])}
    return len(seen) == 1


def measure(results: Any, pv: PaperValue, arms: Arms) -> PartData | None:
    """Gather one part's evidence; None when the task or either arm has no runs."""
    tr = results.tasks.get(pv.task)
    if tr is None:
        return None
    langs = tuple(x for x in pv.languages if x in tr.languages)
    missing = tuple(x for x in pv.languages if x not in tr.languages)
    runs_t, runs_c = tr.runs.get(arms.treatment, {}), tr.runs.get(arms.control, {})
    if not langs or not runs_t or not runs_c:
        return None

    def score(run: Any) -> float:
        return sum(run.accuracy(x) for x in langs) / len(langs)

    def ordered(runs: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
        return [(s, runs[s]) for s in sorted(runs, key=seed_order)]

    one_class = tuple(f"{arm}/seed {seed}" for arm, runs in ((arms.treatment, runs_t),
                                                            (arms.control, runs_c))
                      for seed, run in ordered(runs) if _one_class(run, langs))
    first = next(iter(runs_t.values()))
    rows = {x: first.metrics["languages"][x]["total"] for x in langs}  # None: unknown (imports)
    return PartData(pv.task, langs, missing,
                    {s: score(r) for s, r in ordered(runs_t)},
                    {s: score(r) for s, r in ordered(runs_c)},
                    {s: _correctness(r, langs) for s, r in ordered(runs_t)},
                    {s: _correctness(r, langs) for s, r in ordered(runs_c)},
                    one_class, rows)


def seed_order(seed: int | None) -> tuple[bool, int]:
    """Sort key for seeds; files without a recorded seed (None) come last."""
    return (seed is None, seed or 0)


def is_paper_scale(scale: Any) -> bool:
    """Whether the numbers were measured at the paper's scale, as ``claims.results`` decided it
    from the recorded model and sizes (``Scale.at_paper_scale``); the profile name only when
    the result set does not say."""
    for name in ("at_paper_scale", "paper_scale"):
        decided = getattr(scale, name, None)
        if isinstance(decided, bool):
            return decided
    return getattr(scale, "profile", None) == "paper"


def scale_caveat(scale: Any) -> str | None:
    """``claims.results``' sentence on why the numbers are below paper scale, if it gives one."""
    caveat = getattr(scale, "caveat", None)
    got = caveat() if callable(caveat) else caveat
    return got if isinstance(got, str) and got else None


def min_seeds(results: Any, task: str | None = None) -> tuple[int, str]:
    """Minimum seeds per arm: the recorded ``train.min_seeds`` of the runs' parameters, else 5
    for the paper profile or at paper scale and 3 otherwise. Returns the number and its source."""
    for name, tr in sorted(results.tasks.items()):
        if task is not None and name != task:
            continue
        for arm in sorted(tr.runs):
            for run in tr.runs[arm].values():
                train = (run.metrics["provenance"].get("params") or {}).get("train")
                if isinstance(train, Mapping) and isinstance(train.get("min_seeds"), int):
                    return int(train["min_seeds"]), "provenance.params.train.min_seeds"
    if getattr(results.scale, "profile", None) == "paper" or is_paper_scale(results.scale):
        return DEFAULT_MIN_SEEDS["paper"], "paper default (no train.min_seeds recorded)"
    return DEFAULT_MIN_SEEDS["other"], "default below paper scale (no train.min_seeds recorded)"
