"""Run the sections, write ``bench.json`` and ``bench.md``; the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.codeswitch import bench_codeswitch
from benchmarks.common import (
    LOADS,
    NUM_LABELS,
    SECTIONS,
    SIZES,
    TARGETS,
    Figure,
    Setup,
    bf16_for,
    figure,
    log,
    resolve_model,
    skipped,
)
from benchmarks.evaluate import bench_eval
from benchmarks.flops import FlopModel, matmul_flops, utilisation
from benchmarks.pipeline import bench_pipeline
from benchmarks.report import METHOD, machine, render_markdown
from benchmarks.train import bench_train


def _check_args(size: str, repeats: int, skip: Sequence[str]) -> None:
    if size not in SIZES:
        raise ValueError(f"--size: unknown {size!r}; use one of {sorted(SIZES)}")
    if repeats < 1:
        raise ValueError("--repeats must be >= 1")
    unknown = set(skip) - set(SECTIONS)
    if unknown:
        raise ValueError(f"--skip: unknown section(s) {sorted(unknown)}; known {SECTIONS}")


def _measure_peak(s: Setup, peak: dict[str, list[float]], when: str) -> None:
    """Matmul FLOP/s, taken before and after the workloads (pooled: load drifts)."""
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        log(f"matmul {name} {s.size.matmul_n}^3 ({when})")
        peak[name] += matmul_flops(s.size.matmul_n, dtype, s.size.matmul_timings)


def _workloads(s: Setup, skip: Sequence[str]) -> tuple[list[Figure], dict | None, dict | None]:
    """Sections 1-3 (code-switching, training, evaluation), or their "skipped" figures."""
    figures: list[Figure] = []
    if "codeswitch" not in skip:
        figures += bench_codeswitch(s)
    else:
        figures += [skipped(n, "sentences/s", "skipped")
                    for n in ("codeswitch_fast", "codeswitch_reference")]
    train_info = eval_info = None
    if "train" not in skip:
        figs, train_info = bench_train(s)
        figures += figs
    else:
        figures += [skipped("train_ours", "examples/s", "skipped"),
                    skipped("train_hf_trainer", "examples/s", "skipped"),
                    skipped("train_baseline_step", "ms/example", "skipped"),
                    skipped("train_salt_step", "ms/example", "skipped"),
                    skipped("train_proxy_settings", "examples/s", "skipped"),
                    skipped("train_attention", "examples/s", "skipped"),
                    skipped("train_attention_sdpa", "examples/s", "skipped")]
    if "eval" not in skip:
        figs, eval_info = bench_eval(s)
        figures += figs
    else:
        figures += [skipped(n, u, "skipped") for n, u in
                    (("eval_ours", "pairs/s"), ("eval_plain_loop", "pairs/s"),
                     ("eval_padding_waste_ours", "fraction"),
                     ("eval_padding_waste_plain", "fraction"))]
    return figures, train_info, eval_info


def _peak_figures(s: Setup, peak: dict[str, list[float]], skip: Sequence[str]) -> list[Figure]:
    if "matmul" in skip:
        return [skipped(f"matmul_{d}", "GFLOP/s", "skipped") for d in ("fp32", "bf16")]
    return [figure(f"matmul_{d}", [p / 1e9 for p in peak[d]], "GFLOP/s",
                   note="timings at the start and the end of the run, pooled",
                   matrix_n=s.size.matmul_n) for d in ("fp32", "bf16")]


def _utilisation(s: Setup, train_info: dict | None, eval_info: dict | None,
                 peak: dict[str, list[float]]) -> list[Figure]:
    flops = None
    if train_info or eval_info:
        from salt.models import load_classifier

        flops = FlopModel.of(eval_info["model"] if eval_info
                             else load_classifier(s.model_dir, NUM_LABELS))
    return utilisation(flops, train_info, eval_info, peak)


def _meta(s: Setup, model: str, model_dir: str | Path | None, size: str, skip: Sequence[str],
          load_start: tuple[float, float, float], started: float) -> dict:
    from salt.provenance import git_commit, utc_now, versions

    meta = {
        "date": utc_now(), "git_commit": git_commit(Path(__file__).resolve().parents[1]),
        "model": model, "model_dir": str(model_dir or ""), "size": size, "sizes": asdict(s.size),
        "repeats": s.repeats, "precision": "bf16 autocast" if s.bf16 else "fp32",
        "machine": machine(), "versions": versions(),
        "load_average": {"start": list(load_start), "end": list(os.getloadavg()),
                         "max_during": max(LOADS, default=load_start[0])},
        "wall_s": round(time.perf_counter() - started, 1), "skipped": list(skip),
    }
    # busy: other work held most of the cores when the run began, or, during the run, more
    # than that beyond the bench's own threads (the 1-minute average lags by about a minute)
    cores, threads = meta["machine"]["usable_cores"], meta["machine"]["torch_threads"]
    meta["busy"] = (load_start[0] > 0.75 * cores
                    or meta["load_average"]["max_during"] > threads + 0.75 * cores)
    return meta


def run(model: str = "e5-small", size: str = "full", repeats: int = 3, out: str | Path = "reports",
        pipeline_log: str | Path = "work/timings", precision: str = "auto",
        model_dir: str | Path | None = None, mlm_dir: str | Path | None = None,
        skip: Sequence[str] = (), params: str | Path = "params.yaml") -> dict:
    """Run the suite and write ``out/bench.json`` and ``out/bench.md``; return the report."""
    from transformers.utils import logging as hf_logging

    from salt.models import load_tokenizer

    _check_args(size, repeats, skip)
    hf_logging.set_verbosity_error()
    out = Path(out)
    load_start = os.getloadavg()
    started = time.perf_counter()
    stages: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="salt-bench-") as tmp_name:
        tmp = Path(tmp_name)
        log(f"model {model}, size {size}, {repeats} repeats; load average {load_start[0]:.2f}")
        path = resolve_model(model, tmp, Path(model_dir) if model_dir else None)
        s = Setup(model, path, load_tokenizer(path), bf16_for(precision), SIZES[size],
                  repeats, tmp, Path(mlm_dir) if mlm_dir else None)
        peak: dict[str, list[float]] = {"fp32": [], "bf16": []}
        if "matmul" not in skip:
            _measure_peak(s, peak, "start")
        figures, train_info, eval_info = _workloads(s, skip)
        if "matmul" not in skip:
            _measure_peak(s, peak, "end")
        figures[:0] = _peak_figures(s, peak, skip)
        figures += _utilisation(s, train_info, eval_info, peak)
        if "pipeline" not in skip:
            figs, stages = bench_pipeline(Path(pipeline_log), Path(params))
            figures += figs
        else:
            figures += [skipped("pipeline_total", "s", "skipped"),
                        skipped("pipeline_peak_rss", "MB", "skipped")]
    meta = _meta(s, model, model_dir, size, skip, load_start, started)
    report = {"meta": meta, "figures": [f.as_dict() for f in figures],
              "targets": {k: {"meets_target": next((f.meets_target for f in figures
                                                    if f.name == k), None), **v}
                          for k, v in TARGETS.items()},
              "pipeline_stages": [{k: v for k, v in r.items() if k != "mtime"} for r in stages],
              "method": METHOD}
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / "bench.md").write_text(render_markdown(report))
    log(f"wrote {out / 'bench.json'} and {out / 'bench.md'} in {meta['wall_s']} s")
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="e5-small", help="e5-small | tiny | hf:<path> (default "
                   "e5-small)")
    p.add_argument("--model-dir", default=None,
                   help="folder for the e5-small conversion (default: the salt cache)")
    p.add_argument("--mlm-dir", default=None, help="masked LM with a trained head for the "
                   "code-switching section, e.g. work/mlm/model; its mlm_head.json sets the input "
                   "mode (default: the model folder, head initialised, masked input)")
    p.add_argument("--size", default="full", choices=sorted(SIZES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="reports")
    p.add_argument("--pipeline-log", default="work/timings",
                   help="folder of <stage>.json timings (or one JSON file)")
    p.add_argument("--params", default="params.yaml",
                   help="the pipeline's parameters: which stages a complete run records")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto = bf16 autocast where the CPU has native bf16")
    p.add_argument("--skip", default="", help=f"comma-separated sections to skip: {SECTIONS}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    skip = [x for x in args.skip.split(",") if x]
    run(args.model, args.size, args.repeats, args.out, args.pipeline_log, args.precision,
        args.model_dir, args.mlm_dir, skip, args.params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
