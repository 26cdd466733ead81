"""What every importer shares: options, known test sizes, totals, and the v2 metrics dict.

An imported metrics file says only what its source says. Every provenance value the source does
not state is ``None`` (unknown), and every decision the importer took on the user's behalf (which
split, where a total came from, percent or fraction) is written to ``extra["imported"]`` so a reader
and ``claims.results`` can see it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salt.tasks import TASKS, TaskSpec

SCHEMA_VERSION = 2
SYSTEM_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
KNOWN_SIZES: dict[str, dict[str, int]] = {
    "xnli": {"test": 5010, "dev": 2490},
    "pawsx": {"test": 2000, "dev": 2000},
}
"""Items per language of the published evaluation sets (XNLI 1.0, PAWS-X); the same as the
local data's row counts (``tests/test_claims_import.py`` checks that when the data is present)."""

EXACT_TOL = 1e-6  # a full-precision float (JSON) must equal k/n to this much


class SourceError(ValueError):
    """A source file cannot be imported; the message names the file, line or key."""


@dataclass(frozen=True)
class ImportOptions:
    """What the user states on the command line (``None`` = not stated)."""

    system: str | None = None
    seed: int | None = None
    task: str | None = None
    split: str | None = None  # test | dev
    n_per_language: int | None = None
    model: str | None = None
    profile: str | None = None
    language: str | None = None  # hf: the evaluation language of a single-language run
    scale: str | None = None  # csv: percent | fraction (detected when None)
    data_dir: str | None = None  # xtreme/hf predictions: gold labels (default $SALT_DATA_DIR)


@dataclass
class LanguageNumbers:
    """One language as the source gives it."""

    accuracy: float  # fraction in [0, 1]
    total: int | None = None  # items, when the source states it
    total_from: str | None = None  # how the source states it (e.g. "eval_samples")
    decimals: int | None = None  # reported decimals of the fraction; None = full precision
    reported: str | None = None  # the value as written, when rounded


@dataclass
class Draft:
    """Everything one metrics file needs before totals are decided."""

    task: str
    system: str
    seed: int | None
    languages: dict[str, LanguageNumbers]
    predictions: dict[str, dict[str, list]] | None = None
    split: str | None = None
    split_from: str | None = None
    model: str | None = None
    sizes: dict[str, int | None] = field(default_factory=dict)
    seeds: dict[str, int] | None = None
    params: dict[str, Any] | None = None
    versions: dict[str, str] | None = None
    data_source: str | None = None
    data_revision: str | None = None
    created_utc: str | None = None
    notes: list[str] = field(default_factory=list)


def get_spec(task: str | None, where: str) -> TaskSpec:
    if task not in TASKS:
        raise SourceError(f"{where}: unknown or missing task {task!r}; known: {sorted(TASKS)} "
                          "(pass --task)")
    return TASKS[task]


def check_system(system: str | None, where: str) -> str:
    if system is None:
        raise SourceError(f"{where}: the source does not name the system (arm); pass --system")
    if not SYSTEM_RE.match(system):
        raise SourceError(f"{where}: system {system!r} must match {SYSTEM_RE.pattern}")
    return system


def relative_source(path: Path) -> str:
    """The file name as given, relative to the working directory; never an absolute path."""
    if path.is_absolute():
        try:
            return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            return path.name
    return path.as_posix()


def sha256_of(paths: Sequence[Path]) -> str:
    """sha256 of one file, or of several (names and bytes, sorted by name)."""
    h = hashlib.sha256()
    if len(paths) == 1:
        h.update(paths[0].read_bytes())
    else:
        for p in sorted(paths):
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SourceError(f"{path}: not valid JSON ({err})") from None


def as_fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise SourceError(f"{where}: expected a number, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise SourceError(f"{where}: accuracy {value!r} is not a fraction in [0, 1]")
    return float(value)


def fitting_counts(accuracy: float, n: int, decimals: int | None) -> list[int]:
    """Every k with k/n equal to ``accuracy`` within its reporting precision (GRIM)."""
    half = EXACT_TOL if decimals is None else 0.5 * 10.0 ** -decimals + 1e-12
    lo = max(0, math.ceil((accuracy - half) * n - 1e-9))
    hi = min(n, math.floor((accuracy + half) * n + 1e-9))
    return [k for k in range(lo, hi + 1) if abs(k / n - accuracy) <= half]


def decide_totals(draft: Draft, opts: ImportOptions, where: str) -> dict[str, str]:
    """Fill ``total`` per language: the source's count, else ``--n-per-language``, else the known
    size of ``--split``; unknown otherwise. A stated count that contradicts the user's is an error
    (e.g. dev-set numbers imported as test numbers). Returns how each total was decided."""
    known = KNOWN_SIZES.get(draft.task, {})
    if opts.split is not None and draft.split is not None and opts.split != draft.split:
        raise SourceError(f"{where}: --split {opts.split} but the source's numbers are "
                          f"{draft.split}-split numbers ({draft.split_from})")
    if draft.split is None and opts.split is not None:
        draft.split, draft.split_from = opts.split, "user: --split"
    user_n, user_from = None, None
    if opts.n_per_language is not None:
        user_n, user_from = opts.n_per_language, "user: --n-per-language"
    elif opts.split is not None:
        user_n, user_from = known[opts.split], f"user: --split {opts.split} (known size)"
    decided: dict[str, str] = {}
    for lang, num in draft.languages.items():
        if num.total is not None:
            if user_n is not None and user_n != num.total:
                hint = [s for s, n in known.items() if n == num.total]
                raise SourceError(
                    f"{where}: language {lang}: the source states {num.total} items "
                    f"({num.total_from}) but {user_from} gives {user_n}"
                    + (f"; {num.total} is the {draft.task} {'/'.join(hint)} size" if hint else ""))
            decided[lang] = f"source: {num.total_from}"
        elif user_n is not None:
            num.total, num.total_from = user_n, user_from
            decided[lang] = user_from
        else:
            decided[lang] = "unknown: the source states no item count (pass --n-per-language "\
                            "or --split)"
    if draft.split is None and draft.predictions is None:
        totals = {num.total for num in draft.languages.values()}
        fits = [s for s, n in known.items() if totals == {n}]
        if fits:
            draft.notes.append(f"split unknown; the item count fits the {draft.task} "
                               f"{'/'.join(fits)} size")
    return decided


def language_entry(lang: str, num: LanguageNumbers, where: str) -> dict[str, Any]:
    """``{correct, total, accuracy}``: ``correct`` only when the reported accuracy and total
    determine it; an accuracy no k/total can give is an error (GRIM)."""
    if num.total is None:
        return {"correct": None, "total": None, "accuracy": num.accuracy}
    if num.total <= 0:
        raise SourceError(f"{where}: language {lang}: total {num.total} must be positive")
    ks = fitting_counts(num.accuracy, num.total, num.decimals)
    if not ks:
        shown = num.reported or repr(num.accuracy)
        raise SourceError(f"{where}: language {lang}: accuracy {shown} is not k/{num.total} for "
                          f"any k ({num.total_from}); wrong total or split? "
                          "'python -m claims check-table' says which size would fit")
    if len(ks) == 1:
        return {"correct": ks[0], "total": num.total, "accuracy": ks[0] / num.total}
    return {"correct": None, "total": num.total, "accuracy": num.accuracy}


def averages(spec: TaskSpec, accs: Mapping[str, float]) -> dict[str, float | None]:
    def mean(group: list[str]) -> float | None:
        return sum(accs[x] for x in group) / len(group) if group else None

    langs = list(accs)
    return {"all": mean(langs),
            "without_en": mean([x for x in langs if x != spec.source_language]),
            "under_resourced": mean([x for x in langs if x in spec.under_resourced])}


def build_metrics(draft: Draft, opts: ImportOptions, origin: dict[str, Any],
                  where: str) -> dict[str, Any]:
    """The schema-v2 metrics dict of one task x system x seed (interface 4)."""
    spec = get_spec(draft.task, where)
    unknown = [lang for lang in draft.languages if lang not in spec.languages]
    if unknown:
        raise SourceError(f"{where}: languages {unknown} are not {spec.name} languages")
    decided = decide_totals(draft, opts, where)
    ordered = [lang for lang in spec.languages if lang in draft.languages]
    languages = {lang: language_entry(lang, draft.languages[lang], where) for lang in ordered}
    missing = [lang for lang in spec.languages if lang not in draft.languages]
    reported = {lang: n.reported for lang, n in draft.languages.items() if n.reported}
    sizes = dict(draft.sizes)
    totals = {e["total"] for e in languages.values()}
    if draft.split is not None and len(totals) == 1 and None not in totals:
        sizes.setdefault(draft.split, totals.pop())
    return {
        "schema_version": SCHEMA_VERSION,
        "task": draft.task,
        "system": draft.system,
        "seed": draft.seed,
        "languages": languages,
        "averages": averages(spec, {lang: e["accuracy"] for lang, e in languages.items()}),
        "predictions": draft.predictions,
        "provenance": {
            "profile": opts.profile,
            "model": opts.model or draft.model,
            "sizes": sizes,
            "seeds": draft.seeds,
            "git_commit": None,
            "params_hash": None,
            "params": draft.params,
            "versions": draft.versions,
            "device": None,
            "runtime": None,
            "data_source": draft.data_source,
            "data_revision": draft.data_revision,
            "wall_time_s": None,
            "created_utc": draft.created_utc,
            "split": draft.split,
            "origin": origin,
        },
        "extra": {"imported": {
            "split_from": draft.split_from,
            "totals_from": decided,
            "model_from": "user: --model" if opts.model else ("source" if draft.model else None),
            "profile_from": "user: --profile" if opts.profile else None,
            "missing_languages": missing,
            "reported": reported or None,
            "notes": draft.notes,
        }},
    }


def file_name(metrics: Mapping[str, Any]) -> str:
    seed = "unknown-seed" if metrics["seed"] is None else metrics["seed"]
    return f"{metrics['task']}-{metrics['system']}-{seed}.json"
