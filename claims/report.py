"""Write the audit: ``claims.md`` (tables via tabulate), ``claims.json`` (same content) and a plot.

The JSON document is built first (``audit_to_dict``) and the markdown is rendered from it, so the
two cannot disagree. Every number carries the scale it was measured at.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from .stats import NOISY_SHARE, Audit, Comparison, TaskAnalysis

PLOT_NAME = "claims_per_language.png"
SCALE_NOTE = ("A number measured at a proxy scale (any profile other than `paper`) never confirms "
              "a paper-scale number: it says what happened at that scale.")
RULE = (
    "Per task, one macro average per seed and arm (percentage points). Fewer than 3 seeds per "
    "arm -> inconclusive; one-sided Welch p (Holm across the claim's tasks) < alpha and 95% CI "
    "lower bound > 0 -> holds; SALT mean <= baseline mean with a 95% CI excluding the paper gain "
    "-> fails; otherwise inconclusive; no metrics -> not run. A multi-part claim holds only if "
    "every part holds and fails if any part fails. C9/C10 check the gap; paper-scale absolute "
    "values are only checked (inside each arm's 95% CI) when profile is `paper`."
)


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str):  # numpy scalars
        return _clean(x.item())
    return x


def _comparison(c: Comparison) -> dict[str, Any]:
    w = c.welch
    return {
        "metric": c.label, "languages": list(c.languages), "missing_languages": list(c.missing),
        "n_baseline": c.n_base, "n_salt": c.n_salt,
        "baseline_per_seed": list(c.base), "salt_per_seed": list(c.salt),
        "baseline_mean": c.mean_base, "baseline_sd": c.sd_base,
        "salt_mean": c.mean_salt, "salt_sd": c.sd_salt, "diff": c.diff,
        "welch": {"test": "Welch t-test, one-sided (SALT > baseline)", "t": w.statistic,
                  "df": w.df, "p_one_sided": w.p_greater, "ci_one_sided_low": w.ci_greater_low,
                  "ci95": list(w.ci95)},
        "bootstrap": None if c.bootstrap is None else {
            "low": c.bootstrap.low, "high": c.bootstrap.high, "seed": c.bootstrap.seed,
            "n_resamples": c.bootstrap.n_resamples, "method": c.bootstrap.method},
    }


def _task(a: TaskAnalysis) -> dict[str, Any]:
    return {
        "languages": list(a.languages), "seeds": a.seeds,
        "averages": {k: _comparison(c) for k, c in a.averages.items()},
        "per_language": [dict(_comparison(lc.comparison), language=lc.lang, p_bh=lc.p_bh)
                         for lc in a.per_language],
        "n_languages_improved": a.n_improved, "n_languages_significant_bh": a.n_significant,
        "mcnemar": [{"seed": m.seed, "salt_only_correct": m.salt_only,
                     "baseline_only_correct": m.base_only, "n_items": m.n_items, "p": m.p,
                     "languages": list(m.languages)} for m in a.mcnemar],
    }


def audit_to_dict(audit: Audit) -> dict[str, Any]:
    """The whole audit as a JSON-ready dict (what ``claims.json`` holds)."""
    sc = audit.results.scale
    claims, paper = [], []
    for o in audit.outcomes:
        c = o.claim
        claims.append({"id": c.id, "text": c.text, "seed_verified": c.seed_verified,
                       "seed_confidence": c.seed_confidence, "kind": c.kind, "check": c.check,
                       "verdict": o.verdict, "reason": o.reason, "evidence": o.evidence,
                       "scale": o.scale, "note": c.note})
        for p in o.parts:
            comp = p.comparison
            paper.append({
                "claim": c.id, "task": p.paper.task, "metric": p.label,
                "description": p.paper.description, "paper_gain": p.paper.gain,
                "paper_salt": p.paper.salt, "paper_baseline": p.paper.baseline,
                "rerun_baseline": comp.mean_base if comp else None,
                "rerun_salt": comp.mean_salt if comp else None,
                "rerun_gain": comp.diff if comp else None,
                "ci95": list(comp.welch.ci95) if comp else None,
                "p_one_sided": p.p_one_sided, "p_holm": p.p_adjusted,
                "paper_gain_in_ci": p.paper_gain_in_ci, "effect_ratio": p.effect_ratio,
                "levels": p.levels, "verdict": p.verdict, "reason": p.reason})
    groups: dict[str, dict[str, Any]] = {}
    for task, system, seed, extra in audit.results.extras():
        key = json.dumps(_clean(extra), sort_keys=True)
        groups.setdefault(key, {"runs": [], "extra": _clean(extra)})["runs"].append(
            f"{task}/{system}/seed {seed}")
    share = audit.codeswitch_share
    return _clean({
        "title": "SALT claims audit",
        "results_dir": str(audit.results.root),
        "settings": {"alpha": audit.alpha, "confidence": audit.confidence,
                     "bootstrap_seed": audit.seed, "bootstrap_resamples": audit.n_resamples,
                     "properties_source": audit.properties_source},
        "scale": {"profile": sc.profile, "model": sc.model, "params_hash": sc.params_hash,
                  "sizes": sc.sizes, "seeds": sc.seeds, "n_per_arm": sc.n_per_arm,
                  "git_commits": sc.git_commits, "devices": sc.devices,
                  "data_sources": sc.data_sources, "data_revisions": sc.data_revisions,
                  "n_files": sc.n_files, "warnings": audit.results.warnings},
        "scale_note": SCALE_NOTE,
        "verdict_rule": RULE,
        "claims": claims,
        "tasks": {t: _task(a) for t, a in audit.analyses.items()},
        "paper_vs_rerun": paper,
        "consistency_flags": [{"kind": f.kind, "claims": list(f.claims), "text": f.text}
                              for f in audit.flags],
        "diagnostics": list(groups.values()),
        "codeswitch_dictionary_share": None if share is None else {
            "value": share[0], "source": share[1], "noisy": share[0] < NOISY_SHARE},
        "plot": PLOT_NAME if audit.analyses else None,
    })


# --------------------------------------------------------------------------- markdown


def _f(x: Any, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _ci(ci: Sequence[Any] | None) -> str:
    if not ci or ci[0] is None:
        return "n/a"
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _msd(mean: Any, sd: Any) -> str:
    return f"{_f(mean)} ± {_f(sd)}"


def _table(rows: list[list[Any]], headers: Sequence[str]) -> str:
    return tabulate(rows, headers=list(headers), tablefmt="github", disable_numparse=True)


def _avg_rows(averages: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    rows = []
    for c in averages.values():
        w, bs = c["welch"], c["bootstrap"]
        rows.append([c["metric"], len(c["languages"]), f"{c['n_salt']}+{c['n_baseline']}",
                     _msd(c["baseline_mean"], c["baseline_sd"]),
                     _msd(c["salt_mean"], c["salt_sd"]), _f(c["diff"], "+.2f"),
                     _f(w["t"], ".3f"), _f(w["df"], ".1f"), _f(w["p_one_sided"], ".3g"),
                     _ci(w["ci95"]), _ci([bs["low"], bs["high"]]) if bs else "n/a"])
    return rows


AVG_HEADERS = ("average", "langs", "n SALT+base", "baseline mean ± sd", "SALT mean ± sd", "diff",
               "Welch t", "df", "p (one-sided)", "95% CI", "bootstrap 95% CI")


def render_markdown(doc: Mapping[str, Any]) -> str:
    """Markdown report from the dict of ``audit_to_dict``."""
    sc, st = doc["scale"], doc["settings"]
    out = [f"# {doc['title']}", "",
           f"Results: `{doc['results_dir']}` ({sc['n_files']} metrics files), profile "
           f"**{sc['profile']}**, model `{sc['model']}`. Bootstrap seed {st['bootstrap_seed']} "
           f"({st['bootstrap_resamples']} resamples), alpha {st['alpha']}.", "",
           f"> {doc['scale_note']}", "", "## Summary", ""]
    rows = [[f"**{c['id']}** {c['text']}",
             f"{'verified' if c['seed_verified'] else 'NOT verified'} ({c['seed_confidence']})",
             f"**{c['verdict']}**", c["evidence"], c["scale"]] for c in doc["claims"]]
    out += [_table(rows, ["claim", "seed mark", "verdict", "evidence", "scale"]), "",
            "### Why", ""]
    out += [f"- **{c['id']} {c['verdict']}**: {c['reason']}"
            + (f" _(note: {c['note']})_" if c["note"] else "") for c in doc["claims"]]
    out += ["", "## Scale of every number", "",
            _table([["profile", sc["profile"]], ["model", sc["model"]],
                    ["params hash", sc["params_hash"]],
                    ["sizes", json.dumps(sc["sizes"], sort_keys=True)],
                    ["seeds", json.dumps(sc["seeds"], sort_keys=True)],
                    ["n per arm", json.dumps(sc["n_per_arm"], sort_keys=True)],
                    ["git commit(s)", ", ".join(sc["git_commits"])],
                    ["device(s)", "; ".join(sc["devices"])],
                    ["data", "; ".join(sc["data_sources"]) + " @ "
                     + ", ".join(sc["data_revisions"])]], ["what", "value"]), ""]
    out += [f"- warning: {w}" for w in sc["warnings"]]
    if doc["plot"]:
        out += ["", f"![per-language SALT minus baseline with 95% CI]({doc['plot']})"]
    for task, t in doc["tasks"].items():
        out += ["", f"## {task}", "", "### Averages", "",
                _table(_avg_rows(t["averages"]), AVG_HEADERS)]
        if "under_resourced" in t["averages"]:
            ur = t["averages"]["under_resourced"]
            out += ["", f"### Under-resourced group ({' '.join(ur['languages'])})", "",
                    _table(_avg_rows({"u": ur}), AVG_HEADERS)]
        rows = [[pl["language"], _msd(pl["baseline_mean"], pl["baseline_sd"]),
                 _msd(pl["salt_mean"], pl["salt_sd"]), _f(pl["diff"], "+.2f"),
                 _ci(pl["welch"]["ci95"]), _f(pl["welch"]["p_one_sided"], ".3g"),
                 _f(pl["p_bh"], ".3g")] for pl in t["per_language"]]
        out += ["", "### Per language", "",
                _table(rows, ["lang", "baseline mean ± sd", "SALT mean ± sd", "diff", "95% CI",
                              "p (one-sided)", "p (BH)"]), "",
                f"{t['n_languages_improved']} of {len(t['languages'])} languages improve on "
                f"average; {t['n_languages_significant_bh']} significantly after "
                f"Benjamini-Hochberg at alpha {st['alpha']}."]
    out += ["", "## Paper vs rerun", ""]
    rows = [[p["claim"], p["task"], p["metric"], _f(p["paper_gain"], "+.1f"),
             "" if p["paper_salt"] is None else f"{p['paper_salt']} vs {p['paper_baseline']}",
             "n/a" if p["rerun_gain"] is None else
             f"{p['rerun_salt']:.2f} vs {p['rerun_baseline']:.2f}",
             _f(p["rerun_gain"], "+.2f"), _ci(p["ci95"]), _f(p["p_holm"], ".3g"),
             {True: "yes", False: "no", None: "n/a"}[p["paper_gain_in_ci"]],
             _f(p["effect_ratio"], ".2f"), p["verdict"]] for p in doc["paper_vs_rerun"]]
    out += [_table(rows, ["claim", "task", "average", "paper gain", "paper SALT vs mBERT",
                          "rerun SALT vs baseline", "rerun gain", "95% CI", "p (Holm)",
                          "paper gain in CI", "effect ratio", "verdict"]), "",
            "Effect ratio = rerun gain / paper gain. " + SCALE_NOTE]
    out += ["", "## Consistency between claims", ""]
    out += [f"- **{f['kind']}** ({', '.join(f['claims'])}): {f['text']}"
            for f in doc["consistency_flags"]] or ["- none"]
    out += ["", "## Item-level McNemar (qualifier only)", "",
            "Exact McNemar (binomial test on discordant items) per seed pair, SALT seed k vs "
            "baseline seed k, pooled over languages. Items of different languages are "
            "translations of one another, so this is a qualifier, not a decision.", ""]
    rows = [[task, m["seed"], m["salt_only_correct"], m["baseline_only_correct"], m["n_items"],
             _f(m["p"], ".3g")] for task, t in doc["tasks"].items() for m in t["mcnemar"]]
    out += [_table(rows, ["task", "seed pair", "SALT only right", "baseline only right",
                          "items", "p (exact)"]) if rows else "No paired predictions."]
    for task, t in doc["tasks"].items():
        if t["mcnemar"]:
            k = sum(m["p"] is not None and m["p"] < st["alpha"]
                    and m["salt_only_correct"] > m["baseline_only_correct"] for m in t["mcnemar"])
            out += ["", f"{task}: {k} of {len(t['mcnemar'])} seed pairs favour SALT at alpha "
                        f"{st['alpha']}."]
    out += ["", "## Diagnostics from the runs (verbatim `extra`)", ""]
    share = doc["codeswitch_dictionary_share"]
    if share is not None:
        out += [f"Code-switch dictionary-translation share: {100 * share['value']:.2f}% "
                f"({share['source']})."]
        if share["noisy"]:
            out += ["", f"**Below {100 * NOISY_SHARE:.0f}%: at this scale C1 tests \"mixup with "
                        "noisy substitutions\", not SALT's self-distilled translations.**"]
        out += [""]
    for g in doc["diagnostics"]:
        out += [f"Runs: {', '.join(g['runs'])}", "", "```json",
                json.dumps(g["extra"], indent=2, sort_keys=True), "```", ""]
    if not doc["diagnostics"]:
        out += ["No diagnostics in the metrics files.", ""]
    out += ["## Verdict rule", "", doc["verdict_rule"], ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- plot and files


def plot_differences(doc: Mapping[str, Any], path: Path) -> None:
    """Per-language SALT - baseline (points) with the 95% Welch CI, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = doc["tasks"]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(10, 3.2 * len(tasks)), squeeze=False)
    for ax, (task, t) in zip(axes[:, 0], tasks.items(), strict=True):
        rows = t["per_language"]
        x = range(len(rows))
        y = [r["diff"] if r["diff"] is not None else float("nan") for r in rows]
        lo = [r["diff"] - r["welch"]["ci95"][0] if r["welch"]["ci95"][0] is not None else 0.0
              for r in rows]
        hi = [r["welch"]["ci95"][1] - r["diff"] if r["welch"]["ci95"][1] is not None else 0.0
              for r in rows]
        ax.errorbar(list(x), y, yerr=[lo, hi], fmt="o", capsize=3)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xticks(list(x), [r["language"] for r in rows])
        ax.set_ylabel("SALT - baseline (pt)")
        ax.set_title(f"{task}: per-language difference, 95% Welch CI "
                     f"(profile {doc['scale']['profile']}, model {doc['scale']['model']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(audit: Audit, out_dir: str | Path) -> dict[str, Path]:
    """Write ``claims.md``, ``claims.json`` and the plot into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = audit_to_dict(audit)
    paths = {"json": out / "claims.json", "markdown": out / "claims.md"}
    paths["json"].write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(doc), encoding="utf-8")
    if doc["plot"]:
        paths["plot"] = out / PLOT_NAME
        plot_differences(doc, paths["plot"])
    return paths


def summary_lines(audit: Audit) -> list[str]:
    """One line per claim: id, verdict, seed mark, per-part verdicts (or evidence) and scale."""
    lines = []
    share = audit.codeswitch_share
    for o in audit.outcomes:
        mark = "verified" if o.claim.seed_verified else "not verified"
        if o.parts:
            profile = audit.results.scale.profile
            detail = ", ".join(f"{p.paper.task} {p.label}: {p.verdict}" for p in o.parts)
            detail += f" [{profile} scale]"
            if profile != "paper" and any(p.paper.salt is not None for p in o.parts):
                detail += " [direction only: never confirms the paper's absolute values]"
            if o.claim.id == "C1" and share is not None and share[0] < NOISY_SHARE:
                detail += f" [code-switching noisy: {100 * share[0]:.1f}% dictionary translations]"
        else:
            detail = o.reason if len(o.reason) <= 100 else o.reason[:97] + "..."
        lines.append(f"{o.claim.id:<4} {o.verdict:<13} (seed: {mark}) {detail}")
    return lines
