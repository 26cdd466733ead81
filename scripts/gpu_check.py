"""GPU check: run the smoke profile on CUDA and fail unless every stage's model ran on the GPU in
the precision the runtime decision promises.

Usage: ``python scripts/gpu_check.py [--keep DIR]`` (``nox -s gpu``). It clones the committed
tree into a temporary folder, runs ``dvc exp run -S profile=smoke`` there (tiny model, small
slice; the caller's results are untouched), then reads every recorded ``runtime`` block back
(metrics ``provenance.runtime``, each run's ``train.json``, the mlm / code-switching outputs) and
compares it with what torch reports about the GPU. Exit 0 only when every stage recorded a CUDA
device, fp32 weights and the expected autocast precision; exit 2 without a CUDA device.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

STAGES = ("mlm", "codeswitch", "train", "evaluate")
NO_CUDA = "gpu_check: no CUDA device (torch.cuda.is_available() is False); the GPU check was not run"


def expected_precision() -> str:
    """What ``salt.runtime.decide('auto')`` must pick on this GPU."""
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def runtime_blocks(root: Path) -> Iterator[tuple[str, Path, dict]]:
    """(stage, file, runtime) for every JSON output under ``root`` that records a runtime."""
    for path in sorted(root.rglob("*.json")):
        if ".dvc" in path.parts or ".git" in path.parts:
            continue
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(obj, dict):
            continue
        block = obj.get("runtime") or (obj.get("provenance") or {}).get("runtime")
        if not isinstance(block, dict):
            continue
        rel = path.relative_to(root)
        if "metrics" in rel.parts:
            stage = "evaluate"
        elif path.name == "train.json":
            stage = "train"
        else:
            stage = next((s for s in STAGES if s in str(rel)), "other")
        yield stage, rel, block


def problems(blocks: list[tuple[str, Path, dict]], precision: str) -> list[str]:
    """Every way the recorded runtimes fall short of 'on the GPU, in ``precision``'."""
    out = []
    seen = {stage for stage, _, _ in blocks}
    out += [f"stage {s}: no recorded runtime found" for s in STAGES if s not in seen]
    for stage, rel, block in blocks:
        device = str(block.get("device"))
        if not device.startswith("cuda"):
            out.append(f"{rel} ({stage}): ran on {device!r}, not on the GPU")
        if block.get("weights_dtype") != "float32":
            out.append(f"{rel} ({stage}): weights {block.get('weights_dtype')!r}, expected float32")
        if block.get("autocast") != precision:
            out.append(f"{rel} ({stage}): autocast {block.get('autocast')!r}, expected "
                       f"{precision!r} on this GPU")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    repo = Path(__file__).resolve().parents[1]
    work = args.keep or Path(tempfile.mkdtemp(prefix="salt-gpu-check-"))
    if not (work / ".git").exists():
        subprocess.run(["git", "clone", "--quiet", str(repo), str(work)], check=True)
    env = {**os.environ, "PYTHONPATH": str(work)}
    subprocess.run(["dvc", "exp", "run", "-S", "profile=smoke"], cwd=work, env=env, check=True)
    precision = expected_precision()
    blocks = list(runtime_blocks(work))
    found = problems(blocks, precision)
    name = torch.cuda.get_device_name(0)
    for stage, rel, block in blocks:
        print(f"{stage:10s} {rel}: {block}")
    if found:
        print(f"gpu_check FAILED on {name} (expected autocast {precision}):", file=sys.stderr)
        for p in found:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"gpu_check passed on {name}: {len(blocks)} runtime records, all cuda, {precision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
