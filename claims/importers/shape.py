"""The shape of a schema-v2 metrics file (interface 4 of the coordination notes), checked until
``salt.schema`` validates v2 itself: keys, types, ``null`` only where v2 allows "unknown"."""

from __future__ import annotations

import math
import re
from typing import Any

from .common import SourceError

_NUM = (int, float)
_OPT_STR = (str, type(None))
PROVENANCE: dict[str, tuple[type, ...]] = {
    "profile": _OPT_STR, "model": _OPT_STR, "sizes": (dict,), "seeds": (dict, type(None)),
    "git_commit": _OPT_STR, "params_hash": _OPT_STR, "params": (dict, type(None)),
    "versions": (dict, type(None)), "device": _OPT_STR, "runtime": (dict, type(None)),
    "data_source": _OPT_STR, "data_revision": _OPT_STR, "wall_time_s": (*_NUM, type(None)),
    "created_utc": _OPT_STR, "split": _OPT_STR, "origin": (dict,),
}


def _type(where: str, key: str, value: Any, types: tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, types):
        raise SourceError(f"{where}: key {key!r} has type {type(value).__name__}, expected "
                          f"{'/'.join(t.__name__ for t in types)}")


def check_shape(m: dict[str, Any], where: str) -> None:
    """Raise ``SourceError`` naming the key when ``m`` is not a v2 metrics dict."""
    for key, types in (("schema_version", (int,)), ("task", (str,)), ("system", (str,)),
                       ("seed", (int, type(None))), ("languages", (dict,)), ("averages", (dict,)),
                       ("predictions", (dict, type(None))), ("provenance", (dict,)),
                       ("extra", (dict,))):
        if key not in m:
            raise SourceError(f"{where}: missing key {key!r}")
        _type(where, key, m[key], types)
    if m["schema_version"] != 2 or not re.fullmatch(r"[A-Za-z0-9_.+-]+", m["system"]):
        raise SourceError(f"{where}: schema_version must be 2 and system match [A-Za-z0-9_.+-]+")
    if not m["languages"]:
        raise SourceError(f"{where}: key 'languages' is empty")
    for lang, e in m["languages"].items():
        at = f"languages.{lang}"
        _type(where, f"{at}.accuracy", e.get("accuracy"), _NUM)
        _type(where, f"{at}.correct", e.get("correct"), (int, type(None)))
        _type(where, f"{at}.total", e.get("total"), (int, type(None)))
        if e["correct"] is not None and (e["total"] is None or
                                         not math.isclose(e["accuracy"], e["correct"] / e["total"])):
            raise SourceError(f"{where}: '{at}' correct={e['correct']} total={e['total']} "
                              f"accuracy={e['accuracy']} disagree")
    for key in ("all", "without_en", "under_resourced"):
        _type(where, f"averages.{key}", m["averages"].get(key, "missing"), (*_NUM, type(None)))
    for lang, p in (m["predictions"] or {}).items():
        if lang not in m["languages"] or any(not isinstance(p.get(k), list)
                                             for k in ("uids", "labels", "predicted")):
            raise SourceError(f"{where}: 'predictions.{lang}' needs uids/labels/predicted lists "
                              "and an entry in 'languages'")
        if not len(p["uids"]) == len(p["labels"]) == len(p["predicted"]) == \
                m["languages"][lang]["total"]:
            raise SourceError(f"{where}: 'predictions.{lang}' lengths differ from its total")
    prov = m["provenance"]
    for key, types in PROVENANCE.items():
        if key not in prov:
            raise SourceError(f"{where}: missing key 'provenance.{key}'")
        _type(where, f"provenance.{key}", prov[key], types)
    if prov["split"] not in (None, "test", "dev"):
        raise SourceError(f"{where}: 'provenance.split' must be test, dev or null")
    origin = prov["origin"]
    if origin.get("kind") not in ("pipeline", "import") or not isinstance(origin.get("source"), str):
        raise SourceError(f"{where}: 'provenance.origin' needs kind pipeline|import and a source")
    if origin["source"].startswith("/"):
        raise SourceError(f"{where}: 'provenance.origin.source' must not be an absolute path")
