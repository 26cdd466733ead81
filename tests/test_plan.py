"""salt plan: the arithmetic against a hand computation, rates read from the benchmark file."""

from __future__ import annotations

import argparse
import json

import pytest
import yaml

from salt import plan
from salt.data import repository_root


def _bench(path, train_gflops=1.0, fwd_gflops=2.0):
    figures = [
        {"name": "utilisation_train_vs_fp32_matmul", "value": train_gflops, "unit": "GFLOP/s"},
        {"name": "utilisation_eval_vs_fp32_matmul", "value": fwd_gflops, "unit": "GFLOP/s"},
        {"name": "train_ours", "value": 1, "unit": "examples/s", "details": {"mean_tokens": 10}},
        {"name": "eval_ours", "value": 1, "unit": "pairs/s", "details": {"mean_tokens": 20}},
        {"name": "codeswitch_fast", "value": 1, "unit": "sentences/s",
         "details": {"sentences": 10, "candidate_positions": 30}},
    ]
    path.write_text(json.dumps({"figures": figures}))
    return path


def _data(root, n_train=8, n_dev=4, n_test=6):
    for split, n, langs in (("train", n_train, ["en"]), ("dev", n_dev, ["en", "fr"]),
                            ("test", n_test, ["en", "fr"])):
        for lang in langs:
            path = root / "xnli" / f"{split}-{lang}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"a{i}\tb\tneutral\n" for i in range(n)))
    return root


def _params(tmp_path, data_root, **train):
    raw = yaml.safe_load((repository_root() / "params.yaml").read_text())
    raw.update(profile="smoke", tasks=["xnli"], seeds=[0, 1])
    raw["data"]["smoke"] = {"source": "local", "dir": str(data_root), "train": None, "dev": None,
                            "test": 5, "unlabeled": None, "subset_seed": 0,
                            "languages": {"xnli": ["en", "fr"]}}
    raw["model"]["smoke"]["tiny"] = {"vocab_size": 100, "hidden": 8, "layers": 2, "heads": 2}
    raw["mlm"]["smoke"] = {"train": False, "eval_sentences": 3}
    raw["codeswitch"]["smoke"]["copies"] = 1
    raw["train"]["smoke"].update({"epochs": 2, "batch_size": 4, "selection": "last", **train})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_forward_flops_by_hand():
    arch = plan.Arch(layers=2, hidden=8, ffn=32, vocab=100)
    # encoder weights: 2 * (4*64 + 2*8*32) = 1536; one sequence of 10 tokens:
    # 2*1536*10 + 4*2*8*10*10 = 30720 + 6400 = 37120
    assert arch.encoder_params == 1536
    assert plan.forward_flops(arch, 10, 3) == 3 * 37120
    assert arch.params == 1536 + 800


def test_profile_plan_matches_hand_computation(tmp_path):
    params = plan.load_params(_params(tmp_path, _data(tmp_path / "data")))
    rate = plan.throughput(plan.read_bench(_bench(tmp_path / "bench.json")), "a100", 0.5)
    assert (rate.train_tokens_per_pair, rate.test_tokens_per_pair, rate.candidates_per_pair) == (
        10, 20, 3)
    arch = plan.Arch(2, 8, 32, 100)
    stages = {p.stage: p for p in plan.plan_profile(params, arch, rate)}
    per10, per20 = 37120, 2 * 1536 * 20 + 4 * 2 * 8 * 400  # forward FLOPs of one pair
    # training: 8 rows x 2 epochs per seed, 2 seeds; backward twice the forward
    tr = stages["train xnli salt"]
    assert (tr.runs, tr.rows, tr.tokens) == (2, 16, 8 * 2 * 10 * 2)
    assert tr.forward == 2 * 16 * per10 and tr.backward == 2 * tr.forward
    # time on this machine: (forward + backward) at 1 GFLOP/s
    assert tr.seconds(rate.train_flops_s, rate.forward_flops_s) == pytest.approx(
        3 * 2 * 16 * per10 / 1e9)
    # evaluation: 5 test rows x 2 languages per seed, at the forward rate (2 GFLOP/s)
    ev = stages["evaluate xnli baseline"]
    assert ev.rows == 20 and ev.forward == 2 * 10 * per20 and ev.backward == 0
    assert ev.seconds(rate.train_flops_s, rate.forward_flops_s) == pytest.approx(
        ev.forward / 2e9)
    # masked code-switching: one pass per candidate, 3 candidates per pair, 8 pairs
    cs = stages["codeswitch xnli"]
    assert cs.forward == 8 * 3 * per10
    assert stages["mlm (fill-mask probe)"].forward == 3 * 2 * per10
    # GPU: a100's stated 312 TFLOP/s x 0.5
    assert rate.gpu_flops_s == 312e12 * 0.5


def test_dev_selection_adds_dev_passes(tmp_path):
    params = plan.load_params(_params(tmp_path, _data(tmp_path / "data"),
                                      selection="best_en_dev", checkpoint_every=2))
    rate = plan.throughput(plan.read_bench(_bench(tmp_path / "bench.json")), "h100", 0.35)
    tr = {p.stage: p for p in plan.plan_profile(params, plan.Arch(2, 8, 32, 100), rate)}[
        "train xnli baseline"]
    steps = 8 * 2 / 4  # 4 steps: 2 dev passes of 4 rows
    dev = 2 * 4 * 37120
    assert steps == 4 and tr.forward == 2 * (16 * 37120 + dev)
    assert tr.backward == 2 * 2 * 16 * 37120  # dev passes have no backward


def test_run_prints_rates_read_from_the_bench_file(tmp_path, capsys):
    params = _params(tmp_path, _data(tmp_path / "data"))
    parser = argparse.ArgumentParser()
    plan.add_arguments(parser)
    for gflops in (1.0, 4.0):
        bench = _bench(tmp_path / "bench.json", train_gflops=gflops)
        args = parser.parse_args(["--params", str(params), "--bench", str(bench), "--gpu", "h100",
                                  "--utilisation", "0.25"])
        assert plan.run(args) == 0
        out = capsys.readouterr().out
        assert f"training {gflops:.1f} GFLOP/s" in out
        assert "stated peak 989 TFLOP/s bf16 x assumed utilisation 25%" in out
    args = parser.parse_args(["--params", str(params), "--bench", str(tmp_path / "none.json")])
    assert plan.run(args) == 2
    assert "none.json: missing; run `nox -s bench`" in capsys.readouterr().err
    args = parser.parse_args(["--params", str(params), "--bench", str(bench), "--gpu", "tpu"])
    assert plan.run(args) == 2 and "--gpu 'tpu': unknown" in capsys.readouterr().err


def test_hub_rows_need_an_override_or_a_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv("SALT_HUB_MIRROR", raising=False)
    cfg = {"source": "hub", "hub_revision": {"facebook/xnli": "0" * 40}}
    with pytest.raises(plan.PlanError, match=r"--rows xnli\.train-en=N"):
        plan.count_rows("xnli", "train", "en", cfg, {})
    assert plan.count_rows("xnli", "test", "fr", cfg, {"xnli.test": 7}) == 7
    assert plan.count_rows("xnli", "test", "fr", cfg, {"xnli.test-fr": 3, "xnli.test": 7}) == 3
