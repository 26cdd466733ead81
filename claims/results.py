"""Load a folder of metrics files for the audit, refusing anything that would make it unsound.

This is the one place runs are checked for comparability (D's verdicts and E's importers call it;
they do not check on their own). A folder is audited as one experiment. Refused, with a
``ResultsError`` naming the file(s) and the field:
- a file that does not validate against ``salt.schema``, an unknown task or language, averages or
  counts that disagree with the predictions, duplicate uids;
- item ids from another task, language or split (the split inside each uid against
  ``provenance.split`` and the audited split); gold or predicted labels outside the label set;
- one task x arm x seed twice; identical prediction vectors under different seeds or arms (a run
  copied or relabelled), unless the runs are degenerate (one class for every item: flagged);
- runs of one arm that differ in model, data revision, data source, profile, params hash, split
  or sizes (train size, test size per language); pipeline files of different parameters;
- a ``params_hash`` that is not ``salt.provenance.params_hash(params)``;
- files of a task whose items or gold labels differ.
Flagged (kept, so the verdict can say so): files with summary counts only (``unverifiable``),
fewer languages than a claim names (``TaskResults.coverage``), seeds that do not pair across arms
(``ResultSet.pairing``; ``require_paired`` refuses them), provenance values unknown in some files.
The scale caveat is decided by the recorded model and sizes (``Scale``), not the profile name.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from salt.provenance import params_hash as compute_params_hash
from salt.schema import SCHEMA_VERSION, Metrics, load_metrics
from salt.tasks import TASKS

from .comparability import ResultsError, check_file, check_task, check_within_arms
from .comparability import err as _err
from .registry import Metric, get_claim

VERDICTS = ("holds", "fails", "inconclusive", "not run", "error", "not applicable")


@dataclass(frozen=True)
class PaperScale:
    """The setting a paper's numbers come from (design.md, ``paper`` profile)."""

    model: str
    train: int  # English training pairs
    test: int  # test items per language


PAPER_SCALE = {
    "xnli": PaperScale("hf:bert-base-multilingual-cased", 392_702, 5_010),
    "pawsx": PaperScale("hf:bert-base-multilingual-cased", 49_401, 2_000),
}


def _seed_key(seed: int | None) -> tuple[bool, int]:
    return (seed is None, seed or 0)


@dataclass(frozen=True)
class Run:
    """One metrics file: a task x arm x seed."""

    path: Path
    metrics: Metrics

    @property
    def task(self) -> str:
        return self.metrics["task"]

    @property
    def system(self) -> str:
        return self.metrics["system"]

    arm = system

    @property
    def seed(self) -> int | None:
        return self.metrics["seed"]

    @property
    def verifiable(self) -> bool:
        """Whether per-item predictions back the summary counts."""
        return self.metrics["predictions"] is not None

    def accuracy(self, lang: str) -> float:
        """Accuracy of one language in percentage points."""
        return 100.0 * self.metrics["languages"][lang]["accuracy"]

    def correctness(self, lang: str) -> dict[str, bool] | None:
        """Per-item correctness keyed by uid, or None when the file has no predictions for lang."""
        pred = (self.metrics["predictions"] or {}).get(lang)
        if pred is None:
            return None
        return {u: y == p for u, y, p in zip(pred["uids"], pred["labels"], pred["predicted"],
                                             strict=True)}


@dataclass(frozen=True)
class Coverage:
    """Languages a claim names against those evaluated."""

    claimed: tuple[str, ...]
    evaluated: tuple[str, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(x for x in self.claimed if x not in self.evaluated)

    @property
    def complete(self) -> bool:
        return not self.missing

    def qualifier(self) -> str:
        """'' when complete, else "on k of n languages (missing: ...)" for the headline."""
        if self.complete:
            return ""
        return (f"on {len(self.evaluated)} of {len(self.claimed)} languages "
                f"(missing: {', '.join(self.missing)})")


@dataclass(frozen=True)
class Pairing:
    """Whether the seeds of two arms pair one to one (same seed: same data order and head)."""

    treatment: str
    control: str
    seeds: tuple[int, ...]  # seeds present in both arms
    unpaired: dict[str, tuple[int | None, ...]]  # arm -> seeds without a counterpart

    @property
    def paired(self) -> bool:
        return len(self.seeds) >= 2 and not any(self.unpaired.values())

    @property
    def reason(self) -> str | None:
        """Why a paired analysis is not possible (None when it is)."""
        if self.paired:
            return None
        parts = [f"{arm} seeds {list(s)} have no counterpart in the other arm"
                 for arm, s in self.unpaired.items() if s]
        if len(self.seeds) < 2:
            parts.append(f"only {len(self.seeds)} seed(s) common to {self.treatment} and "
                         f"{self.control}")
        return "; ".join(parts)


@dataclass
class TaskResults:
    """All runs of one task, by arm and seed."""

    task: str
    languages: tuple[str, ...]  # evaluated languages, in the task's canonical order
    runs: dict[str, dict[int | None, Run]] = field(default_factory=dict)

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(sorted(self.runs))

    def seeds(self, system: str) -> list[int]:
        return sorted(self.runs.get(system, {}), key=_seed_key)

    def n(self, system: str) -> int:
        return len(self.runs.get(system, {}))

    def all_runs(self) -> list[Run]:
        return [self.runs[a][s] for a in self.arms for s in self.seeds(a)]

    def unverifiable(self, system: str | None = None) -> list[Run]:
        """Runs (of one arm, or all) with summary counts only."""
        return [r for r in self.all_runs() if not r.verifiable and system in (None, r.system)]

    def metric_languages(self, metric: Metric) -> tuple[str, ...]:
        """Languages a metric averages, restricted to those evaluated (order kept)."""
        return tuple(lang for lang in metric_languages(self.task, metric) if lang in self.languages)

    def missing_languages(self, metric: Metric) -> tuple[str, ...]:
        """Languages the metric names that these files did not evaluate."""
        return self.coverage(metric).missing

    def coverage(self, metric: Metric) -> Coverage:
        return Coverage(metric_languages(self.task, metric), self.metric_languages(metric))

    def scores(self, system: str, langs: Sequence[str]) -> np.ndarray:
        """Per-seed macro average (points) over ``langs``, seeds in ascending order."""
        if not langs:
            return np.empty(0)
        return np.array([np.mean([self.runs[system][s].accuracy(lang) for lang in langs])
                         for s in self.seeds(system)], dtype=float)

    def language_scores(self, system: str, lang: str) -> np.ndarray:
        """Per-seed accuracy (points) of one language."""
        return np.array([self.runs[system][s].accuracy(lang) for s in self.seeds(system)])


@dataclass(frozen=True)
class Scale:
    """What produced the numbers, decided from the recorded model and sizes (not the profile)."""

    profile: str | None  # the label the files carry (informative only)
    model: str | None  # the model every file records (None when they differ or are unknown)
    models: dict[str, list[str | None]]  # arm -> distinct recorded models
    params_hash: str | None
    sizes: dict[str, list[dict[str, int | None] | None]]  # task -> distinct provenance.sizes
    train_sizes: dict[str, list[int | None]]  # task -> distinct training sizes recorded
    test_sizes: dict[str, list[int]]  # task -> distinct test items per language
    seeds: dict[str, dict[str, list[int | None]]]  # task -> arm -> seeds
    n_per_arm: dict[str, dict[str, int]]  # task -> arm -> number of seeds
    git_commits: list[str | None]
    devices: list[str | None]
    data_sources: list[str | None]
    data_revisions: list[str | None]
    n_files: int
    reduced: dict[str, list[str]]  # task -> why the numbers are below the paper's scale

    @property
    def at_paper_scale(self) -> bool:
        return not any(self.reduced.values())

    def caveat(self, task: str | None = None) -> str | None:
        """One sentence for the report when the numbers are below paper scale, else None."""
        tasks = [task] if task else sorted(self.reduced)
        reasons = [f"{t}: " + "; ".join(self.reduced[t]) for t in tasks if self.reduced.get(t)]
        if not reasons:
            return None
        return "below the paper's scale (" + " | ".join(reasons) + ")"


@dataclass
class ResultSet:
    """A validated metrics folder."""

    root: Path
    tasks: dict[str, TaskResults]
    scale: Scale
    warnings: list[str] = field(default_factory=list)

    @property
    def unverifiable(self) -> list[Path]:
        """Files with summary counts only: reportable, never "reproduced"."""
        return [r.path for tr in self.tasks.values() for r in tr.unverifiable()]

    def extras(self) -> list[tuple[str, str, int | None, dict[str, Any]]]:
        """(task, arm, seed, extra) of every run with non-empty ``extra`` diagnostics."""
        out = []
        for task, tr in self.tasks.items():
            for run in tr.all_runs():
                extra = {k: v for k, v in (run.metrics.get("extra") or {}).items() if v}
                if extra:
                    out.append((task, run.system, run.seed, extra))
        return out

    def pairing(self, task: str, treatment: str, control: str) -> Pairing:
        """How the seeds of two arms of a task pair (the analysis says why if it falls back)."""
        tr = self._task(task)
        a = [s for s in tr.seeds(treatment)]
        b = [s for s in tr.seeds(control)]
        common = tuple(s for s in a if s is not None and s in b)
        return Pairing(treatment, control, common,
                       {treatment: tuple(s for s in a if s not in common),
                        control: tuple(s for s in b if s not in common)})

    def require_paired(self, task: str, treatment: str, control: str) -> Pairing:
        """``pairing`` or a ``ResultsError`` naming the unpaired files and the field ``seed``."""
        p = self.pairing(task, treatment, control)
        if not p.paired:
            tr = self._task(task)
            files = [str(tr.runs[arm][s].path) for arm, seeds in p.unpaired.items() for s in seeds]
            raise ResultsError(f"{', '.join(files) or self.root}: field 'seed': the paired "
                               f"analysis of {task} {treatment} vs {control} needs the same seeds "
                               f"in both arms: {p.reason}")
        return p

    def _task(self, task: str) -> TaskResults:
        if task not in self.tasks:
            raise ResultsError(f"{self.root}: no metrics files for task {task!r} "
                               f"(found: {sorted(self.tasks)})")
        return self.tasks[task]


def metric_languages(task: str, metric: Metric) -> tuple[str, ...]:
    """Languages named by a metric for a task (canonical order), from ``salt.tasks``."""
    spec = TASKS.get(task)
    if spec is None:
        raise ResultsError(f"unknown task {task!r}; known tasks: {sorted(TASKS)}")
    if isinstance(metric, (tuple, list)):
        unknown = [lang for lang in metric if lang not in spec.languages]
        if unknown:
            raise ResultsError(f"metric languages {unknown} are not {task} languages")
        return tuple(lang for lang in spec.languages if lang in metric)
    if metric == "all":
        return spec.languages
    if metric == "without_en":
        return spec.target_languages
    if metric == "under_resourced":
        return spec.under_resourced
    raise ResultsError(f"unknown metric {metric!r}; use all, without_en, under_resourced or a "
                       "tuple of languages")


def load_results(root: str | Path, expected_params_hash: str | None = None, *,
                 split: str = "test") -> ResultSet:
    """Load, validate and group every ``*.json`` under ``root`` (recursively); refuse what
    cannot be compared (module docstring). ``split`` is the split the claims are about."""
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"{root}: results folder not found")
    paths = sorted(p for p in root.rglob("*.json") if p.is_file())
    if not paths:
        raise ResultsError(f"{root}: no metrics files (*.json) found; nothing to audit")
    files: list[tuple[Path, Metrics]] = []
    for path in paths:
        m = load_metrics(path)
        check_file(path, m, split)
        files.append((path, m))
    if expected_params_hash is not None:
        for path, m in files:
            if m["provenance"]["params_hash"] != expected_params_hash:
                raise _err(path, "provenance.params_hash",
                           f"{m['provenance']['params_hash']!r} but the audit expects "
                           f"{expected_params_hash!r} (results come from other parameters)")

    tasks: dict[str, TaskResults] = {}
    first: dict[str, Path] = {}
    for path, m in files:
        task = m["task"]
        langs = tuple(x for x in TASKS[task].languages if x in m["languages"])
        if task not in tasks:
            tasks[task] = TaskResults(task, langs)
            first[task] = path
        tr = tasks[task]
        if langs != tr.languages:
            raise _err(path, "languages",
                       f"{list(langs)} differ from {list(tr.languages)} in {first[task]}")
        arm = tr.runs.setdefault(m["system"], {})
        if m["seed"] in arm:
            raise _err(path, "seed", f"duplicate {task}/{m['system']}/seed {m['seed']} "
                                     f"(also in {arm[m['seed']].path})")
        arm[m["seed"]] = Run(path, m)

    warnings: list[str] = []
    check_within_arms(files, warnings)
    for tr in tasks.values():
        check_task(tr, warnings)
    return ResultSet(root, dict(sorted(tasks.items())), _scale(files, tasks),
                     _warnings(files) + warnings)


def _distinct(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _train_size(m: Metrics) -> int | None:
    sizes = m["provenance"]["sizes"] or {}
    return sizes.get("train")


def _reduced(task: str, runs: list[Run]) -> list[str]:
    """Why a task's numbers are below the paper's scale, from the recorded model and sizes."""
    paper = PAPER_SCALE.get(task)
    if paper is None:
        return [f"no paper scale known for task {task!r}"]
    out = []
    for model in _distinct(r.metrics["provenance"]["model"] for r in runs):
        if model is None:
            out.append("model unknown")
        elif model.removeprefix("hf:") != paper.model.removeprefix("hf:"):
            out.append(f"model {model} is not the paper's {paper.model}")
    trains = _distinct(_train_size(r.metrics) for r in runs)
    if None in trains:
        out.append("training size unknown")
    small = [t for t in trains if t is not None and t < paper.train]
    if small:
        out.append(f"{min(small)} training pairs < the paper's {paper.train}")
    tests = [v["total"] for r in runs for v in r.metrics["languages"].values()]
    if None in tests:
        out.append("test size unknown")
    known = [t for t in tests if t is not None]
    if known and min(known) < paper.test:
        out.append(f"{min(known)} test items per language < the full test set's {paper.test}")
    return out


def _scale(files: list[tuple[Path, Metrics]], tasks: dict[str, TaskResults]) -> Scale:
    prov = [m["provenance"] for _, m in files]
    models = _distinct(p["model"] for p in prov)
    profiles = _distinct(p["profile"] for p in prov)
    hashes = _distinct(p["params_hash"] for p in prov)
    return Scale(
        profile=profiles[0] if len(profiles) == 1 else None,
        model=models[0] if len(models) == 1 else None,
        models={arm: _distinct(r.metrics["provenance"]["model"] for tr in tasks.values()
                               for r in tr.all_runs() if r.system == arm)
                for arm in sorted({a for tr in tasks.values() for a in tr.arms})},
        params_hash=hashes[0] if len(hashes) == 1 else None,
        sizes={t: _distinct(m["provenance"]["sizes"] for _, m in files if m["task"] == t)
               for t in sorted(tasks)},
        train_sizes={t: _distinct(_train_size(m) for _, m in files if m["task"] == t)
                     for t in sorted(tasks)},
        test_sizes={t: _distinct(v["total"] for _, m in files if m["task"] == t
                                 for v in m["languages"].values()) for t in sorted(tasks)},
        seeds={t: {a: tasks[t].seeds(a) for a in tasks[t].arms} for t in sorted(tasks)},
        n_per_arm={t: {a: tasks[t].n(a) for a in tasks[t].arms} for t in sorted(tasks)},
        git_commits=_distinct(p["git_commit"] for p in prov),
        devices=_distinct(p["device"] for p in prov),
        data_sources=_distinct(p["data_source"] for p in prov),
        data_revisions=_distinct(p["data_revision"] for p in prov),
        n_files=len(files),
        reduced={t: _reduced(t, tasks[t].all_runs()) for t in sorted(tasks)},
    )


def _warnings(files: list[tuple[Path, Metrics]]) -> list[str]:
    """Provenance differences that do not invalidate the audit but a reader should see."""
    out = []
    for key in ("git_commit", "data_source", "data_revision"):
        values = _distinct(m["provenance"][key] for _, m in files)
        if len(values) > 1:
            out.append(f"provenance.{key} differs between files: {values}")
    dirty = [str(p) for p, m in files if (m["provenance"]["git_commit"] or "").endswith("+dirty")]
    if dirty:
        out.append(f"{len(dirty)} file(s) come from a modified working tree (+dirty)")
    summary = [str(p) for p, m in files if m["predictions"] is None]
    if summary:
        out.append(f"{len(summary)} file(s) have summary counts without per-item predictions "
                   f"(unverifiable: reported, never 'reproduced'): {', '.join(summary)}")
    constant = sorted(f"{m['task']}-{m['system']}-{m['seed']}" for _, m in files
                      if m["predictions"] is not None and len(
                          {y for pr in m["predictions"].values() for y in pr["predicted"]}) == 1)
    if constant:
        out.append(f"{len(constant)} run(s) predict one class for every item (a majority-class "
                   f"classifier: the task did not learn at this scale, so comparisons on it carry "
                   f"no information): {', '.join(constant)}")
    return out


def load_properties(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """Read property-check outcomes ``{claim_id: {"verdict": ..., "evidence": ..., ...}}``.

    ``None`` or a missing file gives ``{}`` (those claims are then "not run"); a file that exists
    but is malformed raises ``ResultsError`` naming the file and field. ``ran_on`` (which model
    and data a check ran on) is passed through when present.
    """
    if path is None or not Path(path).is_file():
        return {}
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise ResultsError(f"{path}: top level must be an object keyed by claim id")
    out: dict[str, dict[str, Any]] = {}
    for cid, entry in obj.items():
        try:
            claim = get_claim(cid)
        except KeyError as err:
            raise _err(path, cid, str(err.args[0])) from None
        if claim.is_statistical:
            raise _err(path, cid, "is decided from metrics files, not by a property check")
        if not isinstance(entry, dict):
            raise _err(path, cid, "must be an object with 'verdict' and 'evidence'")
        if entry.get("verdict") not in VERDICTS:
            raise _err(path, f"{cid}.verdict", f"{entry.get('verdict')!r} not one of {VERDICTS}")
        if not isinstance(entry.get("evidence"), str):
            raise _err(path, f"{cid}.evidence", "missing or not a string")
        out[cid] = {"verdict": entry["verdict"], "evidence": entry["evidence"]}
        if "ran_on" in entry:
            out[cid]["ran_on"] = entry["ran_on"]
    return out


def make_metrics(
    task: str,
    system: str,
    seed: int | None,
    correct: Mapping[str, int | Sequence[bool]],
    total: int = 100,
    *,
    profile: str = "proxy",
    model: str = "e5-small",
    params: dict[str, Any] | None = None,
    params_hash: str | None = None,
    extra: dict[str, Any] | None = None,
    predictions: bool = True,
    split: str = "test",
    train_size: int = 1000,
    label_offset: int = 1,
    rotate: bool = True,
) -> dict[str, Any]:
    """Build a schema-valid metrics dict from per-language correct counts (tests and examples).

    ``correct[lang]`` is a count (the first ``count`` of ``total`` items are right) or a per-item
    list of booleans. With a count and ``rotate``, the right items are shifted by an arm- and
    seed-dependent offset, so distinct synthetic runs never share a prediction vector (the audit
    refuses copied runs); ``rotate=False`` keeps the first ``count`` items right. Uids are
    ``{task}/{split}-{lang}:{i}``; gold labels cycle through the labels;
    a wrong item predicts ``(gold + label_offset) % n_labels``. ``params_hash`` defaults to the
    hash of ``params``.
    """
    spec = TASKS[task]
    n_labels = len(spec.labels)
    languages: dict[str, Any] = {}
    preds: dict[str, Any] = {}
    for lang, c in correct.items():
        if isinstance(c, int):
            shift = (zlib.crc32(system.encode()) % 97 + 13 * (seed or 0)) % total if rotate else 0
            flags = [(i + shift) % total < c for i in range(total)]
        else:
            flags = [bool(x) for x in c]
        labels = [i % n_labels for i in range(len(flags))]
        k = sum(flags)
        languages[lang] = {"correct": k, "total": len(flags), "accuracy": k / len(flags)}
        preds[lang] = {"uids": [f"{task}/{split}-{lang}:{i + 1}" for i in range(len(flags))],
                       "labels": labels,
                       "predicted": [y if ok else (y + label_offset) % n_labels
                                     for y, ok in zip(labels, flags, strict=True)]}

    def avg(group: list[str]) -> float | None:
        return float(np.mean([languages[x]["accuracy"] for x in group])) if group else None

    langs = list(languages)
    params = {"profile": profile} if params is None else params
    return {
        "schema_version": SCHEMA_VERSION, "task": task, "system": system, "seed": seed,
        "languages": languages,
        "averages": {"all": avg(langs), "without_en": avg([x for x in langs if x != "en"]),
                     "under_resourced": avg([x for x in langs if x in spec.under_resourced])},
        "predictions": preds if predictions else None,
        "provenance": {
            "profile": profile, "model": model,
            "sizes": {"train": train_size, "test_per_language": total},
            "seeds": {"train": seed}, "git_commit": "abc1234",
            "params_hash": params_hash or compute_params_hash(params),
            "params": params, "versions": {"python": "3"}, "device": "cpu",
            "data_source": "local:r0", "data_revision": "r0", "wall_time_s": 1.0,
            "created_utc": "2026-01-01T00:00:00Z", "split": split,
            "origin": {"kind": "pipeline", "format": None,
                       "source": f"{task}-{system}-{seed}.json", "sha256": None},
            "runtime": {"device": "cpu", "weights_dtype": "float32", "autocast": "no"},
        },
        "extra": extra or {},
    }


__all__ = ["PAPER_SCALE", "VERDICTS", "Coverage", "Pairing", "PaperScale", "ResultSet",
           "ResultsError", "Run", "Scale", "TaskResults", "load_properties", "load_results",
           "make_metrics", "metric_languages"]
