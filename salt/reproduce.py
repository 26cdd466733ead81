"""Reproduction check: a fresh clone of HEAD, one profile through ``dvc repro``, and every metrics
file compared with the committed reference field by field.

    python -m salt.reproduce [smoke|proxy] [--update] [--keep] [--seeds 0,1]

``smoke`` compares with ``results/reference/smoke/``; ``proxy`` (the default profile) with the
committed ``results/metrics/``. Only the declared run-specific fields (``salt.schema.RUN_SPECIFIC``:
times, host) are ignored; a string holding an absolute path is a difference of its own. ``--update``
copies what the clone produced into the reference (for proxy: results/, reports/ and dvc.lock).
Only committed files take part: the clone is of HEAD.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from salt.data import DataError, data_dir, repository_root

# The reference is committed in a later commit than the one it was made at, so the commit id of
# a reproduction can never equal it: it identifies the run, it is not a result.
_ALWAYS_RUN_SPECIFIC = ("provenance.git_commit",)
REFERENCE = {"smoke": Path("results/reference/smoke")}
# Top-level seeds per profile for the check (smoke: 2 seeds keep CI short; None: as committed).
SEEDS = {"smoke": "0,1"}
_ABSOLUTE = re.compile(r"(^|[\s:=,'\"(])(/[^/\s]+/|[A-Za-z]:\\)")


def run_specific() -> tuple[str, ...]:
    """Dotted field patterns a rerun may change: the schema's declaration plus the commit id."""
    from salt.schema import RUN_SPECIFIC

    return tuple(dict.fromkeys((*RUN_SPECIFIC, *_ALWAYS_RUN_SPECIFIC)))


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values by dotted path (list items as ``name.3``); empty containers are leaves."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(obj, list) and obj:
        out = {}
        for i, value in enumerate(obj):
            out.update(flatten(value, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {prefix: obj}


def _ignored(path: str, patterns: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + ".") or fnmatch.fnmatchcase(path, p)
               for p in patterns)


def absolute_paths(obj: Any) -> list[str]:
    """Fields whose string value holds an absolute machine path."""
    return [f"{path}: absolute path {value!r}" for path, value in flatten(obj).items()
            if isinstance(value, str) and _ABSOLUTE.search(value)]


def compare(reference: Any, produced: Any, ignore: tuple[str, ...] = ()) -> list[str]:
    """Every field that differs (missing, extra or unequal), except those matching ``ignore``,
    plus every field of ``produced`` that holds an absolute path (wherever it is)."""
    ref, new = flatten(reference), flatten(produced)
    diffs = []
    for path in sorted(set(ref) | set(new)):
        if _ignored(path, ignore):
            continue
        if path not in new:
            diffs.append(f"{path}: missing (reference {ref[path]!r})")
        elif path not in ref:
            diffs.append(f"{path}: not in the reference (now {new[path]!r})")
        elif ref[path] != new[path] or type(ref[path]) is not type(new[path]):
            diffs.append(f"{path}: reference {ref[path]!r}, now {new[path]!r}")
    return diffs + absolute_paths(produced)


def compare_dirs(reference: Path, produced: Path, ignore: tuple[str, ...]) -> dict[str, list[str]]:
    """Differences per metrics file name; a file on one side only is a difference."""
    ref = {p.name: p for p in sorted(reference.glob("*.json"))}
    new = {p.name: p for p in sorted(produced.glob("*.json"))}
    if not ref:
        return {str(reference): ["no reference metrics files (make them with --update)"]}
    out: dict[str, list[str]] = {}
    for name in sorted(set(ref) | set(new)):
        if name not in new:
            out[name] = ["not produced by the rerun"]
        elif name not in ref:
            out[name] = ["produced but not in the reference"]
        else:
            diffs = compare(json.loads(ref[name].read_text(encoding="utf-8")),
                            json.loads(new[name].read_text(encoding="utf-8")), ignore)
            if diffs:
                out[name] = diffs
    return out


def machine_paths(clone: Path, folders: tuple[Path, ...], limit: int = 5 << 20) -> list[str]:
    """Output files (JSON, JSONL, CSV, Markdown, YAML under ``results/``, ``reports/``, ``work/``
    and ``dvc.lock``) that contain one of ``folders`` (the clone, the data folder) by path."""
    needles = {str(f) for f in folders} | {str(f.resolve()) for f in folders}
    reference = clone / "results" / "reference"  # committed input of the check, not output
    files = [clone / "dvc.lock"] + [p for sub in ("results", "reports", "work")
                                    for p in sorted((clone / sub).rglob("*"))
                                    if reference not in p.parents]
    hits = []
    for path in files:
        if (not path.is_file() or path.stat().st_size > limit
                or path.suffix not in {".json", ".jsonl", ".csv", ".md", ".lock", ".yaml"}):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for needle in sorted(needles):
            if needle in text:
                hits.append(f"{path.relative_to(clone)}: contains the machine path {needle}")
                break
    return hits


def set_top_level(params: Path, key: str, value: str) -> None:
    """Rewrite one top-level scalar/list line of params.yaml (comments kept)."""
    text = params.read_text(encoding="utf-8")
    new, count = re.subn(rf"(?m)^{re.escape(key)}:.*$", f"{key}: {value}", text, count=1)
    if count != 1:
        raise ValueError(f"{params}: no top-level '{key}:' line to set")
    params.write_text(new, encoding="utf-8")


def clone_env(clone: Path, data: Path) -> dict[str, str]:
    """The clone's own code first on PYTHONPATH (an editable install points elsewhere), this
    interpreter's folder first on PATH (DVC stages call `python -m salt`), the data folder
    named explicitly (nothing lies beside a temp clone)."""
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(clone), "SALT_DATA_DIR": str(data),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"})
    return env


def reproduce(root: Path, profile: str, workdir: Path, seeds: str | None = None,
              command: tuple[str, ...] = ("-m", "dvc", "repro")) -> tuple[Path, dict[str, float]]:
    """Clone ``root``'s HEAD into ``workdir``, select ``profile`` (and ``seeds``), run DVC there.
    Returns the clone and its measured wall time (s) and peak RSS of any process (MiB)."""
    clone = workdir / root.name
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(root), str(clone)],
                   check=True)
    # The committed results are the reference, not the rerun's output: clear them so that only
    # what the rerun writes is compared (and a file it does not write is named as missing).
    for sub in ("metrics", "summary", "plots"):
        for path in (clone / "results" / sub).glob("*.*"):
            path.unlink()
    set_top_level(clone / "params.yaml", "profile", profile)
    if seeds:
        set_top_level(clone / "params.yaml", "seeds", "[" + seeds + "]")
    started = time.perf_counter()
    subprocess.run([sys.executable, *command], cwd=clone, env=clone_env(clone, data_dir()),
                   check=True)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return clone, {"wall_s": round(wall, 1), "peak_rss_mib": round(peak_kib / 1024, 1)}


def update_reference(root: Path, clone: Path, profile: str) -> list[Path]:
    """Copy the rerun's outputs over the reference; returns what was written."""
    written = []
    if profile in REFERENCE:
        target = root / REFERENCE[profile]
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(clone / "results" / "metrics", target)
        return [target]
    # A file the rerun no longer writes (a dropped seed) must not survive beside its outputs.
    for sub in ("metrics", "summary", "plots"):
        for path in (root / "results" / sub).glob("*.*"):
            path.unlink()
    for rel in ("results", "reports", "dvc.lock"):
        src, dst = clone / rel, root / rel
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("reference"))
        else:
            shutil.copy2(src, dst)
        written.append(dst)
    return written


def _uncommitted(root: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                          capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m salt.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", nargs="?", default="smoke", choices=("smoke", "proxy"))
    parser.add_argument("--update", action="store_true",
                        help="copy the rerun's outputs over the committed reference")
    parser.add_argument("--keep", action="store_true", help="keep the temp clone")
    parser.add_argument("--seeds", default=None,
                        help="top-level seeds, comma-separated (default: smoke 0,1; proxy as committed)")
    args = parser.parse_args(argv)
    root = repository_root()
    seeds = args.seeds or SEEDS.get(args.profile)
    if _uncommitted(root):
        print("reproduce: note: uncommitted changes are not part of the check (it clones HEAD)")
    try:
        data_dir()
    except DataError as err:
        print(f"reproduce: error: {err}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="salt-reproduce-"))
    try:
        clone, cost = reproduce(root, args.profile, workdir, seeds)
        print(f"reproduce {args.profile}: fresh clone through `dvc repro` in {cost['wall_s']} s, "
              f"peak RSS {cost['peak_rss_mib']} MiB")
        if args.update:
            for path in update_reference(root, clone, args.profile):
                print(f"reproduce: updated {path.relative_to(root)}")
            return 0
        reference = root / REFERENCE.get(args.profile, Path("results/metrics"))
        ignore = run_specific()
        diffs = compare_dirs(reference, clone / "results" / "metrics", ignore)
        leaks = machine_paths(clone, (clone, data_dir()))
        if leaks:
            diffs["outputs"] = leaks
        print(f"reproduce: ignoring run-specific fields {', '.join(ignore)}")
        for name, lines in diffs.items():
            print(f"reproduce: {name}: {len(lines)} difference(s)")
            for line in lines[:20]:
                print(f"    {line}")
        n = len(list(reference.glob("*.json")))
        if diffs:
            files = len([k for k in diffs if k != "outputs"])
            print(f"reproduce {args.profile}: FAILED: {files} of {n} metrics file(s) differ"
                  + (f"; {len(diffs['outputs'])} output file(s) hold machine paths"
                     if "outputs" in diffs else ""))
            return 1
        print(f"reproduce {args.profile}: all {n} metrics files match the reference")
        return 0
    finally:
        if args.keep:
            print(f"reproduce: clone kept at {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
