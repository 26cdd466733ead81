"""The benchmark suite at its tiny size: it runs end to end and writes every figure with the
keys a script needs. Structure only; speeds are never asserted (benchmarks are not tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import common, evaluate, pipeline, run

FIGURES = (
    "matmul_fp32", "matmul_bf16", "codeswitch_fast", "codeswitch_reference", "train_ours",
    "train_hf_trainer", "train_baseline_step", "train_salt_step", "train_proxy_settings",
    "train_attention", "train_attention_sdpa", "eval_ours",
    "eval_plain_loop", "eval_padding_waste_ours", "eval_padding_waste_plain",
    "utilisation_train_vs_fp32_matmul", "utilisation_train_vs_bf16_matmul",
    "utilisation_train_proxy_vs_fp32_matmul", "utilisation_train_proxy_vs_bf16_matmul",
    "utilisation_eval_vs_fp32_matmul", "utilisation_eval_vs_bf16_matmul",
    "pipeline_total", "pipeline_peak_rss",
)
KEYS = {"name", "value", "unit", "ratio", "target", "meets_target", "min", "max", "n"}


@pytest.fixture(scope="module")
def report(tmp_path_factory, data_dir):
    """One tiny run (one thread: the CI machine is shared) with two fake stage timings."""
    root = tmp_path_factory.mktemp("bench")
    timings = root / "timings"
    timings.mkdir()
    for stage, wall in (("prepare", 3.5), ("train-xnli-salt-0", 120.0)):
        (timings / f"{stage}.json").write_text(json.dumps(
            {"command": stage, "wall_s": wall, "peak_rss_mb": 512.0}))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run.main(["--model", "tiny", "--size", "tiny", "--repeats", "1", "--out",
                           str(root / "reports"), "--pipeline-log", str(timings),
                           "--params", str(root / "no-params.yaml")]) == 0
    finally:
        torch.set_num_threads(threads)
    return root / "reports"


def test_json_has_every_figure_with_required_keys(report):
    data = json.loads((report / "bench.json").read_text())
    figs = {f["name"]: f for f in data["figures"]}
    assert set(FIGURES) <= set(figs)
    for name in FIGURES:
        f = figs[name]
        assert set(f) >= KEYS, name
        assert isinstance(f["value"], float), name
        assert f["meets_target"] in (True, False, None)
        if f["target"] is not None:
            assert isinstance(f["meets_target"], bool), name
    for name, target in common.TARGETS.items():
        assert figs[name]["target"] == target
        assert data["targets"][name]["meets_target"] == figs[name]["meets_target"]
    for name in ("codeswitch_fast", "train_ours", "train_salt_step", "eval_ours"):
        assert figs[name]["ratio"] > 0 and figs[name]["vs"] in figs
    assert figs["codeswitch_fast"]["details"]["identical_substitutions"] is True
    assert figs["pipeline_total"]["value"] == pytest.approx(123.5)
    assert figs["pipeline_total"]["meets_target"] is True
    assert figs["pipeline_peak_rss"]["value"] == 512.0
    assert "pipeline_stage:prepare" in figs
    meta = data["meta"]
    for key in ("date", "git_commit", "machine", "versions", "load_average", "repeats"):
        assert key in meta
    assert meta["machine"]["torch_threads"] == 1
    assert {"torch", "transformers", "salt-xlt"} <= set(meta["versions"])


def test_markdown_written(report):
    text = (report / "bench.md").read_text()
    assert text.startswith("# Benchmarks")
    for name in FIGURES:
        assert f"| {name} " in text
    assert "## Pipeline stages" in text and "train-xnli-salt-0" in text


def test_missing_pipeline_log_is_not_measured(tmp_path):
    figs, stages = pipeline.bench_pipeline(tmp_path / "absent")
    assert stages == []
    total = next(f for f in figs if f.name == "pipeline_total")
    assert total.value is None and total.meets_target is None
    assert total.note.startswith("not measured")


def test_partial_pipeline_is_not_judged(tmp_path):
    """With params.yaml's stage list, a run missing stages gets no verdict on its total."""
    (tmp_path / "prepare.json").write_text(json.dumps(
        {"command": "prepare", "wall_s": 1.0, "peak_rss_mb": 100.0}))
    figs, _ = pipeline.bench_pipeline(tmp_path, Path(__file__).parents[1] / "params.yaml")
    total = next(f for f in figs if f.name == "pipeline_total")
    assert total.value == 1.0 and total.meets_target is None
    assert "train-xnli-baseline-0" in total.details["missing_stages"]
    assert total.note.startswith("incomplete run")


def test_targets_and_padding_waste():
    ge = {"op": ">=", "value": 10.0, "of": "ratio"}
    assert common.check_target(ge, 1.0, 12.0) is True
    assert common.check_target(ge, 100.0, 9.0) is False
    assert common.check_target(ge, 1.0, None) is None
    assert common.check_target(None, 1.0, 1.0) is None
    assert common.figure("train_salt_step", [2.0, 1.0, 3.0], "ms/example", [1.2, 1.0, 1.05]
                        ).as_dict() | {"details": {}} == common.Figure(
        "train_salt_step", 2.0, "ms/example", 1.0, 3.0, 3, 1.05, 1.0, 1.2, None,
        common.TARGETS["train_salt_step"], True).as_dict()
    # lengths 2 and 4 in one batch: 8 positions, 2 of them padding
    assert evaluate.padding_waste([2, 4], [[0, 1]]) == pytest.approx(0.25)
    assert evaluate.padding_waste([2, 4], [[0], [1]]) == 0.0


def test_benchmarks_live_outside_the_package():
    """``salt/`` ships no benchmark code and never imports the benchmarks; the suite runs as
    ``python -m benchmarks``."""
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    assert not (root / "salt" / "bench.py").exists()
    for path in (root / "salt").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import benchmarks" not in text and "from benchmarks" not in text, path
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=root,
                          capture_output=True, text=True, check=True)
    assert "--pipeline-log" in done.stdout
