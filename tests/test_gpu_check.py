"""The GPU check refuses to run without CUDA and flags records that did not run on the GPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_cuda_it_says_so_and_fails():
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "no CUDA device" in proc.stderr and "was not run" in proc.stderr


def test_records_off_the_gpu_or_in_another_precision_are_flagged(tmp_path):
    mod = _module()
    gpu = {"device": "cuda:0", "weights_dtype": "float32", "autocast": "bf16"}
    files = {"results/metrics/xnli-salt-0.json": {"provenance": {"runtime": gpu}},
             ".salt/runs/xnli-salt-0/train.json": {"runtime": {**gpu, "device": "cpu"}},
             ".salt/mlm/mlm.json": {"runtime": {**gpu, "autocast": "fp32"}}}
    for rel, obj in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(json.dumps(obj))
    blocks = list(mod.runtime_blocks(tmp_path))
    assert sorted(stage for stage, _, _ in blocks) == ["evaluate", "mlm", "train"]
    found = mod.problems(blocks, "bf16")
    assert "stage codeswitch: no recorded runtime found" in found
    assert any("train.json (train): ran on 'cpu'" in p for p in found)
    assert any("mlm.json (mlm): autocast 'fp32', expected 'bf16'" in p for p in found)
    assert not any("xnli-salt-0.json" in p for p in found)
    assert mod.problems([(s, Path(s), gpu) for s in mod.STAGES], "bf16") == []
