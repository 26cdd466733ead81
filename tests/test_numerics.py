"""salt.numerics: the study's pinned CPU numerics, their probe and the re-execution that sets them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from salt import numerics

ROOT = Path(__file__).resolve().parents[1]


def test_probe_is_a_fixed_fingerprint_of_this_process():
    first = numerics.probe()
    assert len(first) == 16 and int(first, 16) >= 0
    assert numerics.probe() == first  # same numerics, same bytes


def test_probe_sees_a_change_of_the_last_bit(monkeypatch):
    """A kernel that rounds differently (here: the GELU moved by one ulp) changes the probe."""
    import torch

    before = numerics.probe()
    gelu = torch.nn.functional.gelu

    def off_by_one_ulp(x, *args, **kwargs):
        y = gelu(x, *args, **kwargs)
        return torch.nextafter(y, torch.full_like(y, float("inf")))

    monkeypatch.setattr(torch.nn.functional, "gelu", off_by_one_ulp)
    assert numerics.probe() != before


def test_cpu_model_names_family_and_model(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\n"
                    "model\t\t: 49\nmodel name\t: AMD   EPYC\n\nprocessor\t: 1\n"
                    "model name\t: Other\n")
    assert numerics.cpu_model(info) == "AMD EPYC (family 23, model 49)"
    assert numerics.cpu_model(tmp_path / "absent")  # falls back to platform, never empty


def test_is_pinned_needs_every_pin():
    assert numerics.is_pinned(dict(numerics.PINS))
    for key in numerics.PINS:
        env = {k: v for k, v in numerics.PINS.items() if k != key}
        assert not numerics.is_pinned(env)
        assert not numerics.is_pinned({**env, key: "other"})


def test_the_study_command_re_executes_itself_pinned(tmp_path):
    """`python -m salt study` started without the pins runs with them (and says so)."""
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINS}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "salt", "study", "--root", str(tmp_path / "s"),
                           "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("study: numerics:"))
    assert ", AVX2, 2 threads, probe " in line and "not pinned" not in line
    assert not (tmp_path / "s").exists()  # a dry run writes nothing
