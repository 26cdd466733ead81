"""The records file: one checked JSON object a line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from salt.codeswitch.config import (
    RECORD_KEYS,
    CodeSwitchError,
    Substitution,
)


def check_record(rec: Any, where: str) -> dict[str, Any]:
    """A record's keys, types and internal consistency; errors start with ``where``."""
    if not isinstance(rec, dict):
        raise CodeSwitchError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        raise CodeSwitchError(f"{where}: missing key(s) {missing}")
    src, cs = rec["input_ids"], rec["cs_input_ids"]
    if not isinstance(src, list) or not isinstance(cs, list) or len(src) != len(cs):
        raise CodeSwitchError(f"{where}: input_ids and cs_input_ids must be lists of one length")
    changed = {p for p, (a, b) in enumerate(zip(src, cs, strict=True)) if a != b}
    subs = rec["substitutions"]
    if not isinstance(subs, list):
        raise CodeSwitchError(f"{where}: substitutions must be a list")
    for s in subs:
        if not (isinstance(s, list | tuple) and len(s) == 5 and isinstance(s[0], int)
                and 0 <= s[0] < len(src)):
            raise CodeSwitchError(f"{where}: bad substitution {s!r} "
                                  "(want [position, original_id, new_id, probability, tag])")
        p, orig, new = s[0], s[1], s[2]
        if src[p] != orig or cs[p] != new:
            raise CodeSwitchError(f"{where}: substitution {s!r} disagrees with the id lists")
    if changed != {s[0] for s in subs}:
        raise CodeSwitchError(f"{where}: cs_input_ids changes positions "
                              f"{sorted(changed - {s[0] for s in subs})} without a substitution")
    # optional keys (files from before them lack them)
    if "renormalised" in rec and (not isinstance(rec["renormalised"], list)
                                  or len(rec["renormalised"]) != len(subs)):
        raise CodeSwitchError(f"{where}: renormalised must be a list with one value per "
                              "substitution")
    if "proposals" in rec and not (isinstance(rec["proposals"], int)
                                   and rec["proposals"] >= len(subs)):
        raise CodeSwitchError(f"{where}: proposals must be an int >= the substitutions")
    return rec


def parse_line(line: str, path: Path, lineno: int) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as err:
        raise CodeSwitchError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    rec = check_record(rec, f"{path}:{lineno}")
    rec["substitutions"] = [Substitution(*s) for s in rec["substitutions"]]
    return rec


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write records one JSON object a line (overwrites)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for k, r in enumerate(records, start=1):
            check_record(r, f"record {k}")
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream and check records; any bad line raises CodeSwitchError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise CodeSwitchError(f"{path}: no such records file")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                raise CodeSwitchError(f"{path}:{lineno}: empty line")
            yield parse_line(line, path, lineno)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a file (see ``iter_jsonl``)."""
    return list(iter_jsonl(path))
