"""Is the committed report current? Compare the committed ``dvc.lock`` with the working tree.

    python -m salt.lockcheck [--root DIR]      (nox -s current)

``dvc status`` on a fresh clone compares with an empty cache and calls every stage changed; this
check needs no cache. For every stage recorded in ``dvc.lock`` it compares each dependency that is
source (a file no stage writes) by md5 of its content, as DVC records it, and each parameter by
value with ``params.yaml``; outputs kept in git (results/, reports/) are compared with their
recorded md5 too. Stages in ``dvc.yaml`` with no record are named as never run. Exit 1 when any
stage is stale.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from salt.data import file_hash, repository_root

_MISSING = object()


def _load_yaml(path: Path) -> Any:
    """YAML 1.2 with the safe loader, as DVC reads and writes it (``2e-05`` is a float there,
    a string to a YAML 1.1 reader)."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def _lookup(tree: Any, dotted: str) -> Any:
    node = tree
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _params(root: Path, name: str, cache: dict[str, Any]) -> Any:
    if name not in cache:
        path = root / name
        cache[name] = _load_yaml(path) if path.is_file() else _MISSING
    return cache[name]


def stale_stages(root: Path, stage_names: list[str] | None = None) -> dict[str, list[str]]:
    """Reasons per stale stage (empty dict: the lock matches the working code and params)."""
    lock_path = root / "dvc.lock"
    if not lock_path.is_file():
        return {"dvc.lock": ["missing: nothing has been run and committed"]}
    lock = _load_yaml(lock_path) or {}
    stages: dict[str, dict] = lock.get("stages", {})
    produced = {out["path"].rstrip("/") for st in stages.values() for out in st.get("outs", [])}
    cache: dict[str, Any] = {}
    stale: dict[str, list[str]] = {}
    for name, stage in stages.items():
        if stage_names is not None and name not in stage_names:
            # DVC keeps the records of renamed or removed stages: they describe no current stage
            stale[name] = ["in dvc.lock but no stage of dvc.yaml (renamed or removed): delete "
                           "its record from dvc.lock"]
            continue
        why = []
        for dep in stage.get("deps", []):
            path = dep["path"].rstrip("/")
            if path in produced or any(path.startswith(p + "/") or p.startswith(path + "/")
                                       for p in produced):
                continue  # written by a stage (or a folder of such outputs): checked there
            target = root / path
            recorded = dep.get("md5")
            if not target.exists():
                why.append(f"{path}: dependency missing")
            elif target.is_dir():
                why.append(f"{path}: source folder dependency cannot be checked without DVC")
            elif recorded and file_hash(target, "md5") != recorded:
                why.append(f"{path}: changed since the run (md5 differs)")
        for file_name, values in (stage.get("params") or {}).items():
            current = _params(root, file_name, cache)
            for key, value in values.items():
                now = _MISSING if current is _MISSING else _lookup(current, key)
                if now is _MISSING:
                    why.append(f"{file_name}:{key}: parameter no longer exists")
                elif now != value:
                    why.append(f"{file_name}:{key}: parameter changed since the run")
        for out in stage.get("outs", []):
            target = root / out["path"]
            if target.is_file() and out.get("md5") and file_hash(target, "md5") != out["md5"]:
                why.append(f"{out['path']}: output differs from what the run wrote")
        if why:
            stale[name] = why
    for name in stage_names or []:
        if name not in stages:
            stale[name] = ["in dvc.yaml but never run (no record in dvc.lock)"]
    return stale


def dvc_stage_names(root: Path) -> list[str]:
    """Stage names as DVC expands them (foreach/matrix), via ``dvc stage list``."""
    done = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"],
                          cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dvc stage list failed: {done.stderr.strip()}")
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m salt.lockcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found)")
    args = parser.parse_args(argv)
    root = args.root or repository_root()
    names = dvc_stage_names(root)
    stale = stale_stages(root, names)
    if not stale:
        print(f"current: dvc.lock matches the code and params of all {len(names)} stages; "
              "the committed results and report are current")
        return 0
    for name, why in stale.items():
        print(f"stale: {name}")
        for line in why:
            print(f"    {line}")
    print(f"current: {len(stale)} of {len(names)} stage(s) stale: rerun `dvc repro` and commit "
          "dvc.lock, results/ and reports/ before citing the report")
    return 1


if __name__ == "__main__":
    sys.exit(main())
