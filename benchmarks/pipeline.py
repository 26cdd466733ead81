"""Section 5: per-stage wall time and peak RSS from ``work/timings/*.json``."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import Figure, figure, skipped


def read_timings(path: Path) -> list[dict]:
    """Stage records {stage, command, wall_s, peak_rss_mb} from a folder of ``*.json`` (one per
    stage, named after it) or one JSON file holding a list of records or one record."""
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        recs = []
        for f in files:
            rec = json.loads(f.read_text())
            recs.append({"stage": rec.get("stage", f.stem), **rec,
                         "mtime": f.stat().st_mtime})
        return recs
    if path.is_file():
        obj = json.loads(path.read_text())
        obj = obj if isinstance(obj, list) else [obj]
        return [{"stage": r.get("stage", r.get("command", f"stage-{i}")), **r}
                for i, r in enumerate(obj)]
    return []


def expected_stages(params_path: Path = Path("params.yaml")) -> list[str] | None:
    """Stage names one ``dvc repro`` of params.yaml's profile records (as ``salt.cli`` names
    them), or None without a readable params file."""
    from salt.config import ConfigError, load_params

    try:
        params = load_params(params_path)
    except ConfigError:
        return None
    names = ["prepare", "model", "vocab", "mlm"] + [f"codeswitch-{t}" for t in params.tasks]
    for cmd in ("train", "evaluate"):
        names += [f"{cmd}-{t}-{system}-{seed}" for t in params.tasks
                  for system in ("baseline", "salt") for seed in params.seeds]
    return names


def _display(path: Path) -> str:
    """``path`` relative to the working folder when inside it, else its last two parts (the
    folder of another clone): no machine path in a committed report."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(Path(*path.resolve().parts[-2:]))


def bench_pipeline(path: Path, params_path: Path = Path("params.yaml")
                   ) -> tuple[list[Figure], list[dict]]:
    """Total wall time and peak RSS of the recorded pipeline stages, and one figure per stage.

    The total is judged against its target only when every stage the profile runs is recorded
    (otherwise it is the sum of a partial run and ``meets_target`` is null)."""
    recs = read_timings(path)
    if not recs:
        why = (f"not measured: no stage timings at {path} (run `dvc repro` on the default "
               "profile first; the CLI writes work/timings/<stage>.json)")
        return [skipped("pipeline_total", "s", why), skipped("pipeline_peak_rss", "MB", why)], []
    for r in recs:
        for key in ("wall_s", "peak_rss_mb"):
            if not isinstance(r.get(key), (int, float)):
                raise ValueError(f"{path}: stage {r['stage']!r} has no number {key!r}")
    total = sum(r["wall_s"] for r in recs)
    peak = max(r["peak_rss_mb"] for r in recs)
    expected = expected_stages(params_path)
    missing = [n for n in expected or [] if n not in {r["stage"] for r in recs}]
    note = (f"sum of {len(recs)} recorded stages (sequential, dvc overhead excluded); "
            "one measurement per stage, read as found")
    if missing:
        note = (f"incomplete run: {len(missing)} of {len(expected)} stages not recorded "
                f"(e.g. {', '.join(missing[:3])}); " + note)
    total_fig = figure("pipeline_total", [total], "s", note=note, stages=len(recs),
                       source=_display(path), missing_stages=missing,
                       expected_from=str(params_path) if expected else None)
    if missing:
        total_fig.meets_target = None
    figs = [total_fig,
            figure("pipeline_peak_rss", [peak], "MB", note="largest peak RSS of any stage")]
    for r in recs:
        figs.append(figure(f"pipeline_stage:{r['stage']}", [r["wall_s"]], "s",
                           peak_rss_mb=r["peak_rss_mb"], command=r.get("command")))
    return figs, recs
