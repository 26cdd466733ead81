"""The metrics file: one per task x system x seed, written by the evaluation stage only.

Typed with ``TypedDict`` so readers see every key and its meaning; ``validate_metrics`` checks a
loaded file against it and raises ``SchemaError`` naming the file and the offending key.
Accuracies are fractions in [0, 1]; reports convert to percentage points.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypedDict

SCHEMA_VERSION = 1
SYSTEMS = ("baseline", "salt")


class LanguageResult(TypedDict):
    correct: int  # items predicted correctly
    total: int  # items evaluated
    accuracy: float  # correct / total, in [0, 1]


class Averages(TypedDict):
    all: float  # macro average of per-language accuracy over every language of the task
    without_en: float  # macro average over the non-English languages
    under_resourced: float | None  # macro average over the task's under-resourced group (None if empty)


class Predictions(TypedDict):
    uids: list[str]  # item ids "{task}/{split}-{lang}:{line}"; line numbers are shared by translations
    labels: list[int]  # gold label ids
    predicted: list[int]  # predicted label ids


class Provenance(TypedDict):
    profile: str  # smoke | proxy | paper | a user-defined profile
    model: str  # model source spec, e.g. "e5-small", "hf:bert-base-multilingual-cased"
    sizes: dict[str, int]  # train / dev / test rows per language actually used
    seeds: dict[str, int]  # seed of this run and of every seeded step that fed it
    git_commit: str  # commit of the code ("unknown" outside git), "+dirty" when modified
    params_hash: str  # sha256 of the resolved parameters shared by both systems and all seeds
    params: dict[str, Any]  # those resolved parameters (what the hash covers)
    versions: dict[str, str]  # python, torch, transformers, datasets, salt
    device: str  # e.g. "cpu (AMD EPYC ..., 2 threads, bf16 autocast)" or "cuda: NVIDIA H100"
    data_source: str  # "local:<dir>" or "hub:<dataset id>"
    data_revision: str  # checksum of the local files or the hub commit sha
    wall_time_s: float  # wall time of training + evaluation of this run
    created_utc: str  # ISO 8601 time the file was written


class Metrics(TypedDict):
    schema_version: int  # == SCHEMA_VERSION
    task: str  # xnli | pawsx
    system: str  # baseline | salt
    seed: int  # training seed
    languages: dict[str, LanguageResult]  # per evaluation language
    averages: Averages
    predictions: dict[str, Predictions]  # per language, item-level, for paired tests
    provenance: Provenance
    extra: dict[str, Any]  # free-form diagnostics (code-switch statistics, fill-mask accuracy)


class SchemaError(ValueError):
    """A metrics file does not match the schema; the message names the file and key."""


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "task": str,
    "system": str,
    "seed": int,
    "languages": dict,
    "averages": dict,
    "predictions": dict,
    "provenance": dict,
}
_PROVENANCE: dict[str, type | tuple[type, ...]] = {
    "profile": str,
    "model": str,
    "sizes": dict,
    "seeds": dict,
    "git_commit": str,
    "params_hash": str,
    "params": dict,
    "versions": dict,
    "device": str,
    "data_source": str,
    "data_revision": str,
    "wall_time_s": (int, float),
    "created_utc": str,
}


def _check_type(where: str, key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, expected):
        names = expected.__name__ if isinstance(expected, type) else "/".join(t.__name__ for t in expected)
        raise SchemaError(f"{where}: key {key!r} must be {names}, got {type(value).__name__}")


def validate_metrics(obj: Any, where: str = "<metrics>") -> Metrics:
    """Check a loaded metrics object; return it typed or raise ``SchemaError``."""
    if not isinstance(obj, dict):
        raise SchemaError(f"{where}: top level must be a JSON object")
    for key, typ in _REQUIRED.items():
        if key not in obj:
            raise SchemaError(f"{where}: missing key {key!r}")
        _check_type(where, key, obj[key], typ)
    if obj["schema_version"] != SCHEMA_VERSION:
        raise SchemaError(
            f"{where}: schema_version {obj['schema_version']} is not supported (expected {SCHEMA_VERSION})"
        )
    if obj["system"] not in SYSTEMS:
        raise SchemaError(f"{where}: key 'system' must be one of {SYSTEMS}, got {obj['system']!r}")
    if not obj["languages"]:
        raise SchemaError(f"{where}: key 'languages' is empty")
    for lang, res in obj["languages"].items():
        at = f"languages.{lang}"
        if not isinstance(res, dict):
            raise SchemaError(f"{where}: key {at!r} must be an object")
        for k, typ in (("correct", int), ("total", int), ("accuracy", (int, float))):
            if k not in res:
                raise SchemaError(f"{where}: missing key '{at}.{k}'")
            _check_type(where, f"{at}.{k}", res[k], typ)
        if res["total"] <= 0 or not 0 <= res["correct"] <= res["total"]:
            raise SchemaError(f"{where}: '{at}' has correct={res['correct']} total={res['total']}")
        if not math.isclose(res["accuracy"], res["correct"] / res["total"], abs_tol=1e-9):
            raise SchemaError(
                f"{where}: '{at}.accuracy' {res['accuracy']} != correct/total "
                f"{res['correct']}/{res['total']}"
            )
    for k in ("all", "without_en", "under_resourced"):
        if k not in obj["averages"]:
            raise SchemaError(f"{where}: missing key 'averages.{k}'")
    for k in ("all", "without_en"):
        _check_type(where, f"averages.{k}", obj["averages"][k], (int, float))
    for lang, pred in obj["predictions"].items():
        at = f"predictions.{lang}"
        if lang not in obj["languages"]:
            raise SchemaError(f"{where}: '{at}' has no entry in 'languages'")
        for k in ("uids", "labels", "predicted"):
            if k not in pred or not isinstance(pred[k], list):
                raise SchemaError(f"{where}: missing list '{at}.{k}'")
        n = len(pred["uids"])
        if len(pred["labels"]) != n or len(pred["predicted"]) != n:
            raise SchemaError(f"{where}: '{at}' lists differ in length")
        if n != obj["languages"][lang]["total"]:
            raise SchemaError(f"{where}: '{at}' has {n} items but languages.{lang}.total is "
                              f"{obj['languages'][lang]['total']}")
    for key, typ in _PROVENANCE.items():
        if key not in obj["provenance"]:
            raise SchemaError(f"{where}: missing key 'provenance.{key}'")
        _check_type(where, f"provenance.{key}", obj["provenance"][key], typ)
    obj.setdefault("extra", {})
    return obj  # type: ignore[return-value]


def load_metrics(path: str | Path) -> Metrics:
    """Read and validate one metrics file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: not valid JSON ({err})") from None
    return validate_metrics(obj, str(path))
