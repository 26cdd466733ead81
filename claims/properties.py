"""Executable property checks for SALT's mechanism and property claims (C2-C8).

Each ``check_cN(impl=None, *, seed=0, max_examples=..., bench=None)`` drives an implementation
with Hypothesis and returns ``{"verdict", "evidence", "details"}``: "holds" when the property
survives every generated example, "fails" with the violated property and the (shrunk)
counterexample otherwise, "inconclusive" when the examples never exercised it, "error" when the
check itself crashed (no verdict on the claim). Runs are seeded
(``hypothesis.seed(seed)``, no example database, no deadline), so an audit rerun sees the same
examples.

``impl`` is injectable so that deliberately broken variants can be audited too: C2-C5 take a
code-switcher with the signature ``(model, tokenizer, encoded, vocabs, config) -> records`` (default
``salt.codeswitch.code_switch``, the fast path the pipeline uses), C6-C8 a ``MixupImpl``.

The checks run on a ``Bench``: a tiny random BERT whose WordPiece vocabulary and per-language
sub-word sets are built from real XNLI dev text (``$SALT_DATA_DIR``). Its predictions are noise,
so thresholds are drawn low enough that substitutions happen; the properties do not depend on
prediction quality, which ``salt.codeswitch.codeswitch_stats`` measures on the real pipeline.

The checks live in ``checks_codeswitch`` (C2-C5), ``checks_mixup`` (C6-C8, with the pairing of
each source with its own copy inside ``train()``) and ``checks_written`` (C3/C4 on the pipeline's
written code-switched data); ``bench`` holds the bench and the Hypothesis driver.
``run_all`` runs every check on the real implementation and writes ``reports/properties.json`` in
the format ``claims.results.load_properties`` reads, with ``ran_on`` naming the model and data.
``python -m claims.mutants`` measures how many realistic bugs these checks catch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .bench import (
    Bench,
    CodeSwitcher,
    MixupImpl,
    Violation,
    build_bench_model,
    default_code_switch,
    explore,
    get_bench,
)
from .checks_codeswitch import check_c2, check_c3, check_c4, check_c5, record_file_access, swap_mlm_head
from .checks_mixup import check_c6, check_c7, check_c8
from .checks_written import check_written

__all__ = [
    "CHECKS",
    "Bench",
    "CodeSwitcher",
    "MixupImpl",
    "Violation",
    "build_bench_model",
    "check_c2",
    "check_c3",
    "check_c4",
    "check_c5",
    "check_c6",
    "check_c7",
    "check_c8",
    "check_written",
    "default_code_switch",
    "explore",
    "get_bench",
    "record_file_access",
    "run_all",
    "swap_mlm_head",
]

# ----------------------------------------------------------------------------- all checks

CHECKS: dict[str, Callable[..., dict[str, Any]]] = {
    "C2": check_c2, "C3": check_c3, "C4": check_c4, "C5": check_c5,
    "C6": check_c6, "C7": check_c7, "C8": check_c8,
}


WRITTEN_CHECKS = ("C3", "C4")  # also run on the pipeline's written code-switched data


def _combine(bench_res: dict[str, Any], written: dict[str, Any] | None) -> tuple[str, str]:
    """Verdict and evidence of a claim checked on the bench and on the written data."""
    if written is None:
        return bench_res["verdict"], bench_res["evidence"]
    verdicts = (bench_res["verdict"], written["verdict"])
    for v in ("fails", "error", "inconclusive", "not run"):
        if v in verdicts:
            break
    else:
        v = "holds"
    return v, f"{bench_res['evidence']} | Written data: {written['evidence']}"


def run_all(out_path: str | Path = "reports/properties.json", seed: int = 0,
            bench: Bench | None = None, work: str | Path | None = "work",
            only: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every check (or those in ``only``) on the real implementation and write ``out_path``
    (the format ``claims.results.load_properties`` reads, plus check name, settings, runtime,
    details, and ``ran_on``: which model and data each check ran on). C3 and C4 also run on the
    pipeline's written code-switched data under ``work`` when it exists."""
    started = time.perf_counter()
    bench = bench or get_bench()
    unknown = sorted(set(only or ()) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {sorted(CHECKS)}")
    written = check_written(work) if work is not None and set(WRITTEN_CHECKS) & set(
        only or CHECKS) else None
    out: dict[str, Any] = {}
    for cid, check in CHECKS.items():
        if only is not None and cid not in only:
            continue
        t0 = time.perf_counter()
        res = check(seed=seed, bench=bench)
        ran_on: dict[str, Any] = {"bench": {"model": bench.describe(),
                                            "data": "XNLI dev en/fr/de/es ($SALT_DATA_DIR)"}}
        verdict, evidence = res["verdict"], res["evidence"]
        if cid in WRITTEN_CHECKS:
            verdict, evidence = _combine(res, written)
            ran_on["written"] = (written["ran_on"] if written is not None else
                                 f"not checked: no {Path(work or 'work').as_posix()}"
                                 "/codeswitch/*.jsonl (run the pipeline)")
        out[cid] = {"verdict": verdict, "evidence": evidence,
                    "check": f"claims.properties.{check.__name__}",
                    "implementation": "salt (real)", "seed": seed, "ran_on": ran_on,
                    "hypothesis": [e["settings"] for e in res["details"].get("explorations", [])],
                    "runtime_s": round(time.perf_counter() - t0, 2),
                    "details": res["details"]}
    for entry in out.values():
        entry["total_runtime_s"] = round(time.perf_counter() - started, 2)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Runtimes stay in the returned dict only: the file is a pure function of code, seed and
    # the written data, so rerunning the checks leaves a committed report unchanged.
    path.write_text(json.dumps(_without_runtimes(out), indent=1, ensure_ascii=False, default=str),
                    encoding="utf-8")
    return out


def _without_runtimes(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_runtimes(v) for k, v in obj.items()
                if k not in ("runtime_s", "total_runtime_s")}
    if isinstance(obj, list):
        return [_without_runtimes(v) for v in obj]
    return obj

