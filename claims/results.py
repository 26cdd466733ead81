"""Load a folder of metrics files for the audit, refusing anything that would make it unsound.

A folder is audited as one experiment: every file must validate against ``salt.schema``, come from
the same parameters (``provenance.params_hash``), profile and model, evaluate the same languages per
task, hold each task x system x seed at most once, and predict the same items (uids and gold labels)
as every other file of its task, so paired item-level tests compare like with like. Every refusal
is a ``ResultsError`` naming the file and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from salt.schema import SCHEMA_VERSION, SYSTEMS, Metrics, SchemaError, load_metrics
from salt.tasks import TASKS

from .registry import Metric, get_claim

VERDICTS = ("holds", "fails", "inconclusive", "not run")


class ResultsError(SchemaError):
    """The metrics folder (or a properties file) cannot be audited; says which file and field."""


@dataclass(frozen=True)
class Run:
    """One metrics file: a task x system x seed."""

    path: Path
    metrics: Metrics

    @property
    def task(self) -> str:
        return self.metrics["task"]

    @property
    def system(self) -> str:
        return self.metrics["system"]

    @property
    def seed(self) -> int:
        return self.metrics["seed"]

    def accuracy(self, lang: str) -> float:
        """Accuracy of one language in percentage points."""
        return 100.0 * self.metrics["languages"][lang]["accuracy"]

    def correctness(self, lang: str) -> dict[str, bool] | None:
        """Per-item correctness keyed by uid, or None when the file has no predictions for lang."""
        pred = self.metrics["predictions"].get(lang)
        if pred is None:
            return None
        return {u: y == p for u, y, p in zip(pred["uids"], pred["labels"], pred["predicted"],
                                             strict=True)}


@dataclass
class TaskResults:
    """All runs of one task, by system and seed."""

    task: str
    languages: tuple[str, ...]  # evaluated languages, in the task's canonical order
    runs: dict[str, dict[int, Run]] = field(default_factory=lambda: {s: {} for s in SYSTEMS})

    def seeds(self, system: str) -> list[int]:
        return sorted(self.runs.get(system, {}))

    def n(self, system: str) -> int:
        return len(self.runs.get(system, {}))

    def metric_languages(self, metric: Metric) -> tuple[str, ...]:
        """Languages a metric averages, restricted to those evaluated (order kept)."""
        return tuple(lang for lang in metric_languages(self.task, metric) if lang in self.languages)

    def missing_languages(self, metric: Metric) -> tuple[str, ...]:
        """Languages the metric names that these files did not evaluate."""
        return tuple(lang for lang in metric_languages(self.task, metric)
                     if lang not in self.languages)

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
    """What produced the numbers: every figure in the report carries this."""

    profile: str
    model: str
    params_hash: str
    sizes: dict[str, list[dict[str, int]]]  # task -> distinct provenance.sizes seen
    seeds: dict[str, dict[str, list[int]]]  # task -> system -> seeds
    n_per_arm: dict[str, dict[str, int]]  # task -> system -> number of seeds
    git_commits: list[str]
    devices: list[str]
    data_sources: list[str]
    data_revisions: list[str]
    n_files: int

    def short(self) -> str:
        """One line: profile, model and seeds per arm."""
        arms = "; ".join(f"{t}: " + ", ".join(f"{s} n={n}" for s, n in per.items())
                         for t, per in self.n_per_arm.items())
        return f"profile={self.profile}, model={self.model}, {arms}"


@dataclass
class ResultSet:
    """A validated metrics folder."""

    root: Path
    tasks: dict[str, TaskResults]
    scale: Scale
    warnings: list[str] = field(default_factory=list)

    def extras(self) -> list[tuple[str, str, int, dict[str, Any]]]:
        """(task, system, seed, extra) of every run with non-empty ``extra`` diagnostics."""
        out = []
        for task, tr in self.tasks.items():
            for system in SYSTEMS:
                for seed in tr.seeds(system):
                    extra = tr.runs[system][seed].metrics.get("extra") or {}
                    if extra:
                        out.append((task, system, seed, extra))
        return out


def metric_languages(task: str, metric: Metric) -> tuple[str, ...]:
    """Languages named by a metric for a task (canonical order), from ``salt.tasks``."""
    spec = TASKS.get(task)
    if spec is None:
        raise ResultsError(f"unknown task {task!r}; known tasks: {sorted(TASKS)}")
    if isinstance(metric, tuple):
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


def _err(path: Path, fld: str, msg: str) -> ResultsError:
    return ResultsError(f"{path}: field {fld!r}: {msg}")


def _check_file(path: Path, m: Metrics) -> None:
    """Checks beyond the schema: known task and languages, predictions and averages consistent."""
    spec = TASKS.get(m["task"])
    if spec is None:
        raise _err(path, "task", f"unknown task {m['task']!r}; known: {sorted(TASKS)}")
    for lang in m["languages"]:
        if lang not in spec.languages:
            raise _err(path, f"languages.{lang}", f"not a {m['task']} language")
    for lang, pred in m["predictions"].items():
        uids = pred["uids"]
        if len(set(uids)) != len(uids):
            raise _err(path, f"predictions.{lang}.uids", "duplicate uids")
        correct = sum(int(y == p) for y, p in zip(pred["labels"], pred["predicted"], strict=True))
        if correct != m["languages"][lang]["correct"]:
            raise _err(path, f"languages.{lang}.correct",
                       f"{m['languages'][lang]['correct']} but predictions give {correct}")
    langs = list(m["languages"])
    groups = {"all": langs, "without_en": [x for x in langs if x != spec.source_language],
              "under_resourced": [x for x in langs if x in spec.under_resourced]}
    for key, group in groups.items():
        stored = m["averages"][key]
        if not group:
            if stored is not None:
                raise _err(path, f"averages.{key}",
                           f"{stored} but the group is empty (expected null)")
            continue
        expected = float(np.mean([m["languages"][x]["accuracy"] for x in group]))
        if stored is None or not math.isclose(stored, expected, abs_tol=1e-4):
            raise _err(path, f"averages.{key}",
                       f"{stored} != macro average {expected:.6f} of languages {group}")


def _same(files: list[tuple[Path, Metrics]], fld: str, get: Any) -> None:
    ref_path, ref = files[0]
    for path, m in files[1:]:
        if get(m) != get(ref):
            raise _err(path, fld, f"{get(m)!r} differs from {get(ref)!r} in {ref_path} "
                                  "(mixed provenance: audit one experiment per folder)")


def load_results(root: str | Path, expected_params_hash: str | None = None) -> ResultSet:
    """Load, validate and group every ``*.json`` under ``root`` (recursively).

    Raises ``ResultsError`` (a ``SchemaError``) naming the file and field on: no files, a file that
    does not match the schema, duplicate task/system/seed, mixed params_hash/profile/model, a
    params_hash other than ``expected_params_hash``, languages differing within a task, or
    predictions whose uids or gold labels differ between files of a task.
    """
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"{root}: results folder not found")
    paths = sorted(p for p in root.rglob("*.json") if p.is_file())
    if not paths:
        raise ResultsError(f"{root}: no metrics files (*.json) found; nothing to audit")
    files: list[tuple[Path, Metrics]] = []
    for path in paths:
        m = load_metrics(path)
        _check_file(path, m)
        files.append((path, m))

    _same(files, "provenance.profile", lambda m: m["provenance"]["profile"])
    _same(files, "provenance.model", lambda m: m["provenance"]["model"])
    _same(files, "provenance.params_hash", lambda m: m["provenance"]["params_hash"])
    if expected_params_hash is not None:
        path, m = files[0]
        if m["provenance"]["params_hash"] != expected_params_hash:
            raise _err(path, "provenance.params_hash",
                       f"{m['provenance']['params_hash']!r} but the audit expects "
                       f"{expected_params_hash!r} (results come from other parameters)")

    tasks: dict[str, TaskResults] = {}
    first: dict[str, Path] = {}
    for path, m in files:
        task = m["task"]
        spec = TASKS[task]
        langs = tuple(x for x in spec.languages if x in m["languages"])
        if task not in tasks:
            tasks[task] = TaskResults(task, langs)
            first[task] = path
        tr = tasks[task]
        if langs != tr.languages:
            raise _err(path, "languages",
                       f"{list(langs)} differ from {list(tr.languages)} in {first[task]}")
        if m["seed"] in tr.runs[m["system"]]:
            other = tr.runs[m["system"]][m["seed"]].path
            raise _err(path, "seed", f"duplicate {task}/{m['system']}/seed {m['seed']} "
                                     f"(also in {other})")
        tr.runs[m["system"]][m["seed"]] = Run(path, m)

    for tr in tasks.values():
        _check_items(tr)
    return ResultSet(root, dict(sorted(tasks.items())), _scale(files, tasks), _warnings(files))


def _check_items(tr: TaskResults) -> None:
    """Every file of a task must predict the same items with the same gold labels."""
    ref: dict[str, tuple[Path, dict[str, int]]] = {}
    for system in SYSTEMS:
        for seed in tr.seeds(system):
            run = tr.runs[system][seed]
            for lang, pred in run.metrics["predictions"].items():
                gold = dict(zip(pred["uids"], pred["labels"], strict=True))
                if lang not in ref:
                    ref[lang] = (run.path, gold)
                    continue
                ref_path, ref_gold = ref[lang]
                if gold.keys() != ref_gold.keys():
                    missing = len(ref_gold.keys() - gold.keys())
                    extra = len(gold.keys() - ref_gold.keys())
                    raise _err(run.path, f"predictions.{lang}.uids",
                               f"differ from {ref_path} ({missing} missing, {extra} extra); "
                               "paired tests need the same items")
                bad = [u for u in gold if gold[u] != ref_gold[u]]
                if bad:
                    raise _err(run.path, f"predictions.{lang}.labels",
                               f"gold label of {bad[0]!r} (and {len(bad) - 1} more) differs "
                               f"from {ref_path}")


def _distinct(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _scale(files: list[tuple[Path, Metrics]], tasks: dict[str, TaskResults]) -> Scale:
    prov = [m["provenance"] for _, m in files]
    return Scale(
        profile=prov[0]["profile"],
        model=prov[0]["model"],
        params_hash=prov[0]["params_hash"],
        sizes={t: _distinct(m["provenance"]["sizes"] for _, m in files if m["task"] == t)
               for t in sorted(tasks)},
        seeds={t: {s: tasks[t].seeds(s) for s in SYSTEMS} for t in sorted(tasks)},
        n_per_arm={t: {s: tasks[t].n(s) for s in SYSTEMS} for t in sorted(tasks)},
        git_commits=_distinct(p["git_commit"] for p in prov),
        devices=_distinct(p["device"] for p in prov),
        data_sources=_distinct(p["data_source"] for p in prov),
        data_revisions=_distinct(p["data_revision"] for p in prov),
        n_files=len(files),
    )


def _warnings(files: list[tuple[Path, Metrics]]) -> list[str]:
    """Provenance differences that do not invalidate the audit but a reader should see."""
    out = []
    for key in ("git_commit", "data_source", "data_revision"):
        values = _distinct(m["provenance"][key] for _, m in files)
        if len(values) > 1:
            out.append(f"provenance.{key} differs between files: {values}")
    dirty = [str(p) for p, m in files if m["provenance"]["git_commit"].endswith("+dirty")]
    if dirty:
        out.append(f"{len(dirty)} file(s) come from a modified working tree (+dirty)")
    constant = sorted(f"{m['task']}-{m['system']}-{m['seed']}" for _, m in files
                      if len({y for pr in m["predictions"].values() for y in pr["predicted"]}) == 1)
    if constant:
        out.append(f"{len(constant)} run(s) predict one class for every item (a majority-class "
                   f"classifier: the task did not learn at this scale, so comparisons on it carry "
                   f"no information): {', '.join(constant)}")
    return out


def load_properties(path: str | Path | None) -> dict[str, dict[str, str]]:
    """Read property-check outcomes ``{claim_id: {"verdict": ..., "evidence": ...}}``.

    ``None`` or a missing file gives ``{}`` (those claims are then "not run"); a file that exists
    but is malformed raises ``ResultsError`` naming the file and field.
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
    out: dict[str, dict[str, str]] = {}
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
    return out


def make_metrics(
    task: str,
    system: str,
    seed: int,
    correct: Mapping[str, int | Sequence[bool]],
    total: int = 100,
    *,
    profile: str = "proxy",
    model: str = "e5-small",
    params_hash: str = "h0",
    extra: dict[str, Any] | None = None,
    predictions: bool = True,
) -> dict[str, Any]:
    """Build a schema-valid metrics dict from per-language correct counts (tests and examples).

    ``correct[lang]`` is a count (the first ``count`` of ``total`` items are right) or a per-item
    list of booleans. Uids are ``{task}/test-{lang}:{i}``; gold labels cycle through the labels.
    """
    spec = TASKS[task]
    n_labels = len(spec.labels)
    languages: dict[str, Any] = {}
    preds: dict[str, Any] = {}
    for lang, c in correct.items():
        flags = [i < c for i in range(total)] if isinstance(c, int) else [bool(x) for x in c]
        labels = [i % n_labels for i in range(len(flags))]
        k = sum(flags)
        languages[lang] = {"correct": k, "total": len(flags), "accuracy": k / len(flags)}
        preds[lang] = {"uids": [f"{task}/test-{lang}:{i}" for i in range(len(flags))],
                       "labels": labels,
                       "predicted": [y if ok else (y + 1) % n_labels
                                     for y, ok in zip(labels, flags, strict=True)]}

    def avg(group: list[str]) -> float | None:
        return float(np.mean([languages[x]["accuracy"] for x in group])) if group else None

    langs = list(languages)
    return {
        "schema_version": SCHEMA_VERSION, "task": task, "system": system, "seed": seed,
        "languages": languages,
        "averages": {"all": avg(langs), "without_en": avg([x for x in langs if x != "en"]),
                     "under_resourced": avg([x for x in langs if x in spec.under_resourced])},
        "predictions": preds if predictions else {},
        "provenance": {
            "profile": profile, "model": model, "sizes": {"train": 1000, "test": total},
            "seeds": {"train": seed}, "git_commit": "abc1234", "params_hash": params_hash,
            "params": {"profile": profile}, "versions": {"python": "3"}, "device": "cpu",
            "data_source": "local:/data", "data_revision": "r0", "wall_time_s": 1.0,
            "created_utc": "2026-01-01T00:00:00Z",
        },
        "extra": extra or {},
    }
