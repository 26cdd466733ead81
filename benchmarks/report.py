"""The machine description and the Markdown rendering of a report."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

import torch

from benchmarks.flops import FlopModel


def machine() -> dict:
    from salt.runtime import bf16_supported

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "unknown")()
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "torch_threads": torch.get_num_threads(), "cpu_capability": cap,
            "bf16_native": bf16_supported(torch.device("cpu")), "platform": platform.platform()}


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


def _target_text(t: dict | None) -> str:
    if t is None:
        return ""
    return f"{t['op']} {t['value']:g}" + ("x" if t["of"] == "ratio" else "")


def render_markdown(report: dict) -> str:
    """bench.md: provenance, the figure table, the pipeline stages and how each is measured."""
    from tabulate import tabulate

    meta = report["meta"]
    m = meta["machine"]
    lines = [
        "# Benchmarks", "",
        f"Run {meta['date']} at commit `{meta['git_commit']}`: model `{meta['model']}`, "
        f"size `{meta['size']}`, {meta['repeats']} repeats, precision {meta['precision']}.", "",
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores, {m['torch_threads']} torch "
        f"threads, capability {m['cpu_capability']}, native bf16 {_fmt(m['bf16_native'])}. "
        f"Load average (1 min) at start {meta['load_average']['start'][0]:.2f}, "
        f"highest during the run {meta['load_average']['max_during']:.2f} (the bench's own "
        f"threads add about {m['torch_threads']}), at end {meta['load_average']['end'][0]:.2f}.",
        "",
        *([f"**The machine was busy** (other work beside the bench on {m['usable_cores']} "
           "cores): the figures are not representative of this machine; rerun when it is "
           "quiet.", ""] if meta["busy"] else []),
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
        "Values are medians over the repeats with [min, max]; a ratio compares with the figure "
        "named in `vs`, measured in the same repeats (median of per-repeat ratios).", "",
    ]
    rows = []
    for f in report["figures"]:
        val = _fmt(f["value"])
        if f["n"] > 1:
            val += f" [{_fmt(f['min'])}, {_fmt(f['max'])}]"
        ratio = ""
        if f["ratio"] is not None:
            ratio = _fmt(f["ratio"]) + (f" [{_fmt(f['ratio_min'])}, {_fmt(f['ratio_max'])}]"
                                        if f["n"] > 1 else "")
            ratio += f" vs {f['vs']}"
        rows.append([f["name"], val, f["unit"], ratio, _target_text(f["target"]),
                     _fmt(f["meets_target"]), f["note"]])
    lines.append(tabulate(rows, headers=["figure", "value", "unit", "ratio", "target", "meets",
                                         "note"], tablefmt="github"))
    if report.get("pipeline_stages"):
        lines += ["", "## Pipeline stages", ""]
        stage_rows = [[r["stage"], r.get("command", ""), r["wall_s"], r["peak_rss_mb"]]
                      for r in report["pipeline_stages"]]
        lines.append(tabulate(stage_rows, headers=["stage", "command", "wall s", "peak RSS MB"],
                              tablefmt="github"))
    lines += ["", "## How the figures are measured", ""]
    lines += [f"- {k}: {v}" for k, v in report["method"].items()]
    return "\n".join(lines) + "\n"


METHOD = {
    "code-switching": "English XNLI training pairs, round robin over the target languages; the "
                      "reference runs one forward of the whole masked LM per masked position "
                      "(fp32), the fast path batches single-masked copies and decodes only the "
                      "target ids. Same model, sentences and config; outputs compared on "
                      "uid, copy, language, ids and substitutions (probabilities separately).",
    "training": "English XNLI training pairs, pre-tokenised; steps x batch size items, one "
                "epoch, each item seen once. train() (checkpoint_every beyond the run; its "
                "final checkpoint and model file are still written) vs load_classifier + the "
                "same freezing + transformers.Trainer (DataCollatorWithPadding, same lr, "
                "schedule, warm-up ratio, clipping, weight decay, bf16 flag, use_cpu, no "
                "saving, logging or evaluation, Trainer's default optimiser). A 1-step run of "
                "each is done first, untimed. The SALT step uses synthetic token-aligned copies.",
    "evaluation": "XNLI test, row-parallel subset, every language; the same encoded items, "
                  "batch size and precision for evaluate_languages (length buckets) and the "
                  "plain loop (file order, padding to the batch max).",
    "utilisation": FlopModel.__doc__.strip().replace("\n    ", " ").replace("\n", " ")
                   + " Peak: torch.matmul of two n x n matrices, 2 n^3 FLOPs, median of timings.",
    "pipeline": "work/timings/<stage>.json written by the salt CLI after each command "
                "(wall time, peak RSS from getrusage); dvc repro is not run by the bench.",
}
