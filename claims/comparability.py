"""The refusals behind ``claims.results.load_results``: what makes runs impossible to compare.

Each check raises ``ResultsError`` with the file(s) and the field; what can be kept but must be
seen is appended to ``warnings``. ``claims.results`` is the only caller.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from salt.provenance import params_hash as compute_params_hash
from salt.schema import Metrics, SchemaError
from salt.tasks import TASKS

UID = re.compile(r"^(?P<task>[^/]+)/(?P<split>[a-z]+)-(?P<lang>[^:]+):(?P<line>\d+)$")
Files = list[tuple[Path, Metrics]]


class ResultsError(SchemaError):
    """The metrics folder (or a properties file) cannot be audited; says which file and field."""


def err(path: Path | str, fld: str, msg: str) -> ResultsError:
    return ResultsError(f"{path}: field {fld!r}: {msg}")


# ----------------------------------------------------------------------------- one file


def check_file(path: Path, m: Metrics, split: str) -> None:
    """Checks beyond the schema: known task and languages, the audited split, labels in the
    label set, predictions and averages consistent, the params hash recomputed."""
    spec = TASKS.get(m["task"])
    if spec is None:
        raise err(path, "task", f"unknown task {m['task']!r}; known: {sorted(TASKS)}")
    for lang in m["languages"]:
        if lang not in spec.languages:
            raise err(path, f"languages.{lang}", f"not a {m['task']} language")
    prov = m["provenance"]
    if prov["split"] is not None and prov["split"] != split:
        raise err(path, "provenance.split", f"{prov['split']!r} but the audit is about the "
                                            f"{split!r} split")
    if prov["params"] is not None and prov["params_hash"] is not None:
        actual = compute_params_hash(prov["params"])
        if actual != prov["params_hash"]:
            raise err(path, "provenance.params_hash",
                      f"{prov['params_hash']!r} is not the hash of the recorded provenance.params "
                      f"({actual!r}): the parameters were edited or the hash copied")
    if m["predictions"] is not None:
        _check_predictions(path, m, split)
    _check_averages(path, m)


def _check_predictions(path: Path, m: Metrics, split: str) -> None:
    spec = TASKS[m["task"]]
    n_labels = len(spec.labels)
    missing = [lang for lang in m["languages"] if lang not in m["predictions"]]
    if missing:
        raise err(path, "predictions", f"no predictions for {missing} although languages lists "
                                       "them (per-item predictions are all or nothing)")
    for lang, pred in m["predictions"].items():
        at = f"predictions.{lang}"
        uids = pred["uids"]
        if len(set(uids)) != len(uids):
            raise err(path, f"{at}.uids", "duplicate uids")
        for uid in uids:
            match = UID.match(uid)
            if match is None:
                raise err(path, f"{at}.uids", f"{uid!r} is not '{{task}}/{{split}}-{{lang}}:{{line}}'")
            if match["task"] != m["task"] or match["lang"] != lang:
                raise err(path, f"{at}.uids", f"{uid!r} is an item of {match['task']}/"
                                              f"{match['lang']}, not {m['task']}/{lang}")
            if match["split"] != split:
                raise err(path, f"{at}.uids", f"{uid!r} comes from the {match['split']!r} split, "
                                              f"not {split!r} (provenance.split: "
                                              f"{m['provenance']['split']!r})")
        for key in ("labels", "predicted"):
            bad = [(i, y) for i, y in enumerate(pred[key]) if not 0 <= y < n_labels]
            if bad:
                i, y = bad[0]
                raise err(path, f"{at}.{key}", f"label {y} of {uids[i]!r} (and {len(bad) - 1} "
                                               f"more) is outside the {m['task']} label set "
                                               f"0..{n_labels - 1} {list(spec.labels)}")
        correct = sum(int(y == p) for y, p in zip(pred["labels"], pred["predicted"], strict=True))
        if correct != m["languages"][lang]["correct"]:
            raise err(path, f"languages.{lang}.correct",
                      f"{m['languages'][lang]['correct']} but predictions give {correct}")


def _check_averages(path: Path, m: Metrics) -> None:
    spec = TASKS[m["task"]]
    langs = list(m["languages"])
    groups = {"all": langs, "without_en": [x for x in langs if x != spec.source_language],
              "under_resourced": [x for x in langs if x in spec.under_resourced]}
    for key, group in groups.items():
        stored = m["averages"][key]
        if not group:
            if stored is not None:
                raise err(path, f"averages.{key}", f"{stored} but the group is empty (expected null)")
            continue
        expected = float(np.mean([m["languages"][x]["accuracy"] for x in group]))
        if stored is None or not math.isclose(stored, expected, abs_tol=1e-4):
            raise err(path, f"averages.{key}",
                      f"{stored} != macro average {expected:.6f} of languages {group}")


# ----------------------------------------------------------------------------- across files


def _fields(m: Metrics) -> dict[str, Any]:
    """The values that must agree within an arm (dotted field -> value; None = unknown)."""
    prov = m["provenance"]
    out: dict[str, Any] = {f"provenance.{k}": prov[k] for k in
                           ("model", "data_revision", "data_source", "profile", "params_hash",
                            "split")}
    for key, value in (prov["sizes"] or {}).items():
        out[f"provenance.sizes.{key}"] = value
    for lang, res in m["languages"].items():
        out[f"languages.{lang}.total"] = res["total"]
    return out


def _agree(group: Files, what: str, get: Callable[[Metrics], dict[str, Any]],
           warnings: list[str]) -> None:
    """Known values of every field must be equal across ``group``; unknowns are warned about."""
    seen: dict[str, tuple[Path, Any]] = {}
    unknown: dict[str, list[str]] = {}
    for path, m in group:
        for fld, value in get(m).items():
            if value is None:
                unknown.setdefault(fld, []).append(path.name)
                continue
            if fld not in seen:
                seen[fld] = (path, value)
            elif seen[fld][1] != value:
                ref_path, ref = seen[fld]
                raise err(path, fld, f"{value!r} differs from {ref!r} in {ref_path}: runs of "
                                     f"{what} must come from the same setting")
    for fld, names in sorted(unknown.items()):
        if fld in seen:
            warnings.append(f"{what}: {fld} is unknown in {', '.join(names)} (known in "
                            f"{seen[fld][0].name}): cannot confirm the runs are comparable")


def check_within_arms(files: Files, warnings: list[str]) -> None:
    """Runs of one arm agree in model, data, profile, params, split and sizes; pipeline files
    (whose params hash covers every arm and seed) agree across arms too."""
    arms: dict[tuple[str, str], Files] = {}
    for path, m in files:
        arms.setdefault((m["task"], m["system"]), []).append((path, m))
    for (task, arm), group in sorted(arms.items()):
        _agree(group, f"arm {arm!r} of {task}", _fields, warnings)
    pipeline = [(p, m) for p, m in files if m["provenance"]["origin"]["kind"] == "pipeline"]
    _agree(pipeline, "one pipeline experiment", lambda m: {
        f"provenance.{k}": m["provenance"][k] for k in ("profile", "params_hash", "data_revision")},
        warnings)


def _vector(run: Any) -> tuple:
    pred = run.metrics["predictions"]
    return tuple((lang, tuple(p for _, p in sorted(zip(pred[lang]["uids"], pred[lang]["predicted"],
                                                      strict=True))))
                 for lang in sorted(pred))


def _degenerate(run: Any) -> bool:
    pred = run.metrics["predictions"]
    return len({y for p in pred.values() for y in p["predicted"]}) <= 1


def check_task(tr: Any, warnings: list[str]) -> None:
    """Across the runs of one task: same items and gold labels, same test sizes, no copied runs."""
    runs = tr.all_runs()
    ref: dict[str, tuple[Path, dict[str, int]]] = {}
    totals: dict[str, tuple[Path, int]] = {}
    for run in runs:
        for lang, res in run.metrics["languages"].items():
            if res["total"] is None:  # unknown (imports): warned about by check_within_arms
                continue
            if lang not in totals:
                totals[lang] = (run.path, res["total"])
            elif totals[lang][1] != res["total"]:
                raise err(run.path, f"languages.{lang}.total",
                          f"{res['total']} test items but {totals[lang][1]} in {totals[lang][0]}: "
                          "arms are compared on the same test set")
        for lang, pred in (run.metrics["predictions"] or {}).items():
            gold = dict(zip(pred["uids"], pred["labels"], strict=True))
            if lang not in ref:
                ref[lang] = (run.path, gold)
                continue
            ref_path, ref_gold = ref[lang]
            if gold.keys() != ref_gold.keys():
                raise err(run.path, f"predictions.{lang}.uids",
                          f"differ from {ref_path} ({len(ref_gold.keys() - gold.keys())} missing, "
                          f"{len(gold.keys() - ref_gold.keys())} extra); paired tests need the "
                          "same items")
            bad = [u for u in gold if gold[u] != ref_gold[u]]
            if bad:
                raise err(run.path, f"predictions.{lang}.labels",
                          f"gold label of {bad[0]!r} (and {len(bad) - 1} more) differs from "
                          f"{ref_path}")
    seen: dict[tuple, Any] = {}
    for run in runs:
        if not run.verifiable:
            continue
        if _degenerate(run):
            continue  # one class everywhere: identical by construction, flagged as degenerate
        key = _vector(run)
        if key in seen:
            other = seen[key]
            raise err(run.path, "predictions", f"identical per-item predictions to {other.path} "
                      f"({other.system} seed {other.seed} vs {run.system} seed {run.seed}, every "
                      "language): one run copied under another seed or arm")
        seen[key] = run
    counts: dict[tuple, Any] = {}
    for run in runs:
        if run.verifiable or len(run.metrics["languages"]) < 2:
            continue
        key = tuple(sorted((k, v["correct"]) for k, v in run.metrics["languages"].items()))
        if key in counts:
            warnings.append(f"{run.path} and {counts[key].path} (summary counts only) have "
                            "identical correct counts in every language: possibly one run twice")
        counts[key] = run
