"""Write the audit: ``claims.md`` (read in one screen, then details), ``claims.json`` and a plot.

The JSON document is built first (``audit_to_dict``) and the markdown is rendered from it, so the
two cannot disagree. The markdown's first screen answers "does it reproduce, at what scale, how
sure": one line per claim. Then the methods (the declared plan), then one section per claim with
tables. No JSON in the markdown, no cell over one line, "n/a" for what is undefined, and no
absolute paths.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from .measure import is_paper_scale, scale_caveat, seed_order
from .verdicts import NOISY_SHARE, Audit, Part

PLOT_NAME = "claims_per_language.png"
CELL = 110  # longest table cell, characters


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists, numpy scalars -> Python."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str):
        return _clean(x.item())
    return x


def display_path(path: str | Path) -> str:
    """A path fit for committed files: relative to the working directory, else its name."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return Path(os.path.relpath(path)).as_posix() if path.is_relative_to(Path.cwd()) \
            else path.name
    except ValueError:
        return path.name


def _part(p: Part) -> dict[str, Any]:
    t, d, pl = p.test, p.data, p.planned
    return {
        "task": p.paper.task, "languages": list(p.paper.languages),
        "description": p.paper.description, "claimed_gain": p.paper.gain,
        "claimed_treatment": p.paper.treatment, "claimed_control": p.paper.control,
        "verdict": p.verdict, "reason": p.reason, "ruled_out": p.ruled_out(),
        "evaluated_languages": list(d.languages) if d else [],
        "missing_languages": list(d.missing) if d else [],
        "test_rows": d.test_rows if d else {},
        "one_class_runs": list(d.one_class) if d else [],
        "summary_only": d.summary_only if d else None,
        "min_seeds": {"n": p.min_seeds[0], "source": p.min_seeds[1]},
        "test": None if t is None else {
            "design": t.design, "seeds": list(t.seeds), "treatment_per_seed": list(t.treatment),
            "control_per_seed": list(t.control), "diff": t.diff, "sd": t.sd, "n": t.n,
            "df": t.df, "t": t.statistic, "p_greater": t.p_greater, "p_less": t.p_less,
            "low": t.low, "high": t.high, "note": t.note},
        "p_holm": p.p_adjusted, "power_at_claim": p.power_at_claim,
        "plan": None if pl is None else {
            "mde_paired": pl.mde_now_paired, "seeds_paired": pl.seeds_paired,
            "seeds_unpaired": pl.seeds_unpaired, "power_now_unpaired": pl.power_now_unpaired,
            "item_variance": pl.components.item_var,
            "rows_paired": {str(k): v for k, v in pl.rows_paired.items()},
            "rows_unpaired": {str(k): v for k, v in pl.rows_unpaired.items()}},
        "pooled_cluster_bootstrap": None if p.pooled is None else {
            "diff": p.pooled.diff, "low": p.pooled.low, "high": p.pooled.high,
            "clusters": p.pooled.n_clusters, "seed_pairs": p.pooled.n_pairs},
        "per_language": [{"language": x.lang, "diff": x.diff,
                          "low": x.interval.low if x.interval else None,
                          "high": x.interval.high if x.interval else None}
                         for x in p.per_language],
        "clustered_mcnemar": [{"seed": m.seed, "treatment_only": m.treatment_only,
                               "control_only": m.control_only, "items": m.n_items,
                               "clusters": m.n_clusters, "chi2": m.statistic, "p": m.p}
                              for m in p.mcnemar],
        "levels": p.levels,
    }


def _mean(values: Sequence[Any]) -> float | None:
    nums = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return sum(nums) / len(nums) if nums else None


def _codeswitch(audit: Audit) -> dict[str, Any]:
    """Code-switch quality per task and language (mean over runs): substitution rates, the
    share that are dictionary translations (evaluation only) and the most frequent pairs."""
    out: dict[str, Any] = {}
    for task, tr in sorted(audit.results.tasks.items()):
        blocks = [b for runs in tr.runs.values() for r in runs.values()
                  if isinstance(b := (r.metrics.get("extra") or {}).get("codeswitch"), Mapping)]
        per: dict[str, list[Mapping[str, Any]]] = {}
        for b in blocks:
            for lang, stats in (b.get("per_language") or {}).items():
                if isinstance(stats, Mapping):
                    per.setdefault(lang, []).append(stats)
        rows = {}
        for lang, items in per.items():
            dicts = [d if isinstance(d := x.get("dictionary"), Mapping) else {} for x in items]
            content = [c if isinstance(c := d.get("content_words"), Mapping) else {}
                       for d in dicts]
            pairs = items[0].get("top_pairs") or []
            rows[lang] = {
                "records": _mean([x.get("records") for x in items]),
                "set_size": _mean([x.get("set_size") for x in items]),
                "rate_per_token": _mean([x.get("rate_per_token") for x in items]),
                "rate_per_candidate": _mean([x.get("rate_per_candidate") for x in items]),
                "cap_bound_share": _mean([x.get("cap_bound_share") for x in items]),
                "leak_rate": _mean([x.get("leak_rate") for x in items]),
                "dictionary_share": _mean([d.get("share") for d in dicts]),
                "precision_by_type": _mean([d.get("precision_by_type") for d in dicts]),
                "content_precision_by_type": _mean([c.get("precision_by_type")
                                                    for c in content]),
                "source_in_dictionary": _mean([d.get("source_in_dictionary") for d in dicts]),
                "top_pairs": [f"{a}>{b}" for a, b, *_ in pairs[:3]]}
        if rows:
            arms = sorted({b["arm"] for b in blocks if isinstance(b.get("arm"), str)})
            out[task] = {"arm": ", ".join(arms) or None, "per_language": rows}
    return out


def _scale(audit: Audit) -> dict[str, Any]:
    sc = audit.results.scale
    tasks = {}
    for name, tr in sorted(audit.results.tasks.items()):
        rows = sorted({r.metrics["languages"][x]["total"] for runs in tr.runs.values()
                       for r in runs.values() for x in r.metrics["languages"]} - {None})
        tasks[name] = {"seeds": {arm: sorted(runs, key=seed_order)
                                 for arm, runs in sorted(tr.runs.items()) if runs},
                       "rows_per_language": rows,
                       "languages": len(tr.languages)}
    return {"profile": sc.profile, "model": sc.model, "paper_scale": is_paper_scale(sc),
            "caveat": scale_caveat(sc),
            "params_hash": getattr(sc, "params_hash", None), "tasks": tasks,
            "git_commits": list(getattr(sc, "git_commits", [])),
            "data_revisions": list(getattr(sc, "data_revisions", [])),
            "n_files": getattr(sc, "n_files", None)}


def audit_to_dict(audit: Audit) -> dict[str, Any]:
    """The whole audit as a JSON-ready dict (what ``claims.json`` holds)."""
    claims = []
    for o in audit.outcomes:
        c = o.claim
        claims.append({
            "id": c.id, "text": c.text, "kind": c.kind, "check": c.check,
            "seed_verified": c.seed_verified, "seed_confidence": c.seed_confidence,
            "arms": None if c.arms is None else {"treatment": c.arms.treatment,
                                                  "control": c.arms.control},
            "verdict": o.verdict, "reason": o.reason, "ran_on": o.ran_on, "note": c.note,
            "parts": [_part(p) for p in o.parts]})
    share = audit.codeswitch_share
    return _clean({
        "title": "Claims audit",
        "results_dir": display_path(audit.results.root),
        "plan": {"alpha": audit.plan.alpha, "power_target": audit.plan.power_target,
                 "bootstrap_seed": audit.plan.bootstrap_seed,
                 "n_resamples": audit.plan.n_resamples, "text": audit.plan.lines()},
        "scale": _scale(audit),
        "warnings": list(getattr(audit.results, "warnings", [])),
        "imported": audit.imported,
        "properties_source": (display_path(audit.properties_source)
                              if audit.properties_source else None),
        "claims": claims,
        "consistency_flags": [{"kind": f.kind, "claims": list(f.claims), "text": f.text}
                              for f in audit.flags],
        "budgets_cut_short": audit.budgets,
        "codeswitch": {"per_language": _codeswitch(audit), "dictionary_share": share,
                       "noisy": None if share is None else share < NOISY_SHARE},
        "plot": PLOT_NAME if _plot_panels(claims) else None,
    })


# --------------------------------------------------------------------------- markdown


def _f(x: Any, fmt: str = "+.2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _iv(low: Any, high: Any) -> str:
    return "n/a" if low is None or high is None else f"[{low:+.2f}, {high:+.2f}]"


def _cell(x: Any) -> str:
    """One table cell: one line, at most ``CELL`` characters, pipes escaped."""
    s = " ".join(str(x).split())
    s = s if len(s) <= CELL else s[:s.rfind(" ", 0, CELL - 3)] + "..."
    return s.replace("|", "\\|")


def _table(rows: list[list[Any]], headers: Sequence[str]) -> str:
    return tabulate([[_cell(x) for x in r] for r in rows], headers=list(headers),
                    tablefmt="github", disable_numparse=True)


def _rows(x: Any) -> str:
    return "not reachable" if x is None else f"{x:,}"


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _effect(part: Mapping[str, Any]) -> str:
    t = part["test"]
    if t is None or part["verdict"] in ("not run", "not measurable"):
        return "n/a"
    return f"{_f(t['diff'])} {_iv(t['low'], t['high'])}"


def _count(n: int, unit: str) -> str:
    """``1 seed``, ``2 seeds``."""
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _part_why(p: Mapping[str, Any]) -> str:
    """A few words on why a part got its verdict."""
    v, pl = p["verdict"], p["plan"]
    if v.startswith("inconclusive") and p["test"] and p["test"]["n"] < p["min_seeds"]["n"]:
        return f"{_count(p['test']['n'], 'seed')}, {p['min_seeds']['n']} needed"
    if v.startswith("inconclusive") and pl is not None:
        seeds = "> 200" if pl["seeds_paired"] is None else pl["seeds_paired"]
        return f"power {_f(p['power_at_claim'], '.2f')} at the claim; {seeds} seed pairs needed"
    if v == "not measurable":
        return "majority-class runs"
    return p["reason"].split("; ")[0]


def _short_reason(c: Mapping[str, Any]) -> str:
    parts = c["parts"]
    if len(parts) == 1:
        return _part_why(parts[0])
    if parts:
        return "; ".join(f"{p['task']}: {_part_why(p)}" for p in parts)
    text = c["reason"].split(": ", 1)[-1] if c["reason"].startswith(c["id"]) else c["reason"]
    if len(text) <= 90:
        return text
    return text[:text.rfind(" ", 0, 87)] + "..."


def _scale_line(doc: Mapping[str, Any]) -> str:
    sc = doc["scale"]
    tasks = "; ".join(
        f"{t}: seeds {' / '.join(f'{arm} {len(s)}' for arm, s in v['seeds'].items())}, "
        f"{', '.join(map(str, v['rows_per_language']))} test rows x {v['languages']} languages"
        for t, v in sc["tasks"].items())
    where = "paper scale" if sc["paper_scale"] else (
        (sc["caveat"] or "below paper scale") + "; no number here confirms a paper-scale number")
    return f"Scale: profile `{sc['profile']}`, model `{sc['model']}`, {where}. {tasks}."


def _summary(doc: Mapping[str, Any]) -> list[str]:
    rows = []
    for c in doc["claims"]:
        if len(c["parts"]) > 1:
            effect = "; ".join(f"{p['task']} {_effect(p)}" for p in c["parts"])
            claimed = "; ".join(f"{p['task']} {p['claimed_gain']:+.1f}" for p in c["parts"])
        elif c["parts"]:
            effect = _effect(c["parts"][0])
            claimed = f"{c['parts'][0]['claimed_gain']:+.1f}"
        else:
            effect, claimed = "property check", "-"
        rows.append([c["id"], c["verdict"], effect, claimed, _short_reason(c)])
    return [_table(rows, ["claim", "verdict", "effect [95% bounds]", "claimed", "why"])]


def _part_section(c: Mapping[str, Any], p: Mapping[str, Any], alpha: float,
                  scale: str) -> list[str]:
    t, pl = p["test"], p["plan"]
    rows_now = ", ".join(sorted({str(v) for v in p["test_rows"].values()})) or "n/a"
    unit = "seed pair" if t is not None and t["design"] == "paired" else "seed"
    seeds = "n/a" if t is None else _count(t["n"], unit)
    head = (f"**{p['task']}, {p['description']}: {p['verdict']}.** Effect {_effect(p)}; rules "
            f"out {p['ruled_out']}; power at the claimed {p['claimed_gain']:+.1f}: "
            f"{_f(p['power_at_claim'], '.2f')}; scale {scale}, {seeds}, {rows_now} test rows x "
            f"{len(p['evaluated_languages'])} languages. {_cap(p['reason'])}.")
    out = ["", head, ""]
    if t is not None:
        arms = c["arms"]
        rows = [[seed, _f(a, ".2f"), _f(b, ".2f"), _f(a - b)]
                for seed, a, b in zip(t["seeds"], t["treatment_per_seed"], t["control_per_seed"],
                                      strict=False)] if t["design"] == "paired" else []
        if rows:
            out += [_table(rows, ["seed", arms["treatment"], arms["control"], "difference"]), ""]
        out += [f"Test: {t['design']} t-test, n={t['n']}, t={_f(t['t'], '.2f')}, "
                f"df={_f(t['df'], '.1f')}, one-sided p={_f(t['p_greater'], '.3g')} "
                f"(Holm {_f(p['p_holm'], '.3g')}), minimum seeds {p['min_seeds']['n']} "
                f"({p['min_seeds']['source']})." + (f" {_cap(t['note'])}." if t["note"] else "")]
    if pl is not None:
        need = "more than 200" if pl["seeds_paired"] is None else pl["seeds_paired"]
        per_arm = "more than 200" if pl["seeds_unpaired"] is None else pl["seeds_unpaired"]
        out += ["", f"Power: minimum detectable effect {_f(pl['mde_paired'])} pt now; {need} "
                    f"seed pairs (unpaired: {per_arm} per arm) for {doc_power(alpha)} on this "
                    "test set. Test rows per language for a population-level answer (test-set "
                    f"noise, item variance {_f(pl['item_variance'], '.0f')} pt^2, included):", ""]
        rows = [[k, _rows(v), _rows(pl["rows_unpaired"].get(k))]
                for k, v in pl["rows_paired"].items()]
        out += [_table(rows, ["seeds per arm", "rows/lang paired", "rows/lang unpaired"])]
    if p["one_class_runs"]:
        out += ["", f"Majority-class runs: {', '.join(p['one_class_runs'])}."]
    if p["pooled_cluster_bootstrap"]:
        b = p["pooled_cluster_bootstrap"]
        pairs = b["seed_pairs"]
        noise = ("test-set and seed noise" if pairs >= 2 else
                 "test-set noise only: with one seed pair, seed noise is not in this interval")
        out += ["", f"Cluster bootstrap over {b['clusters']} source items and "
                    f"{_count(pairs, 'seed pair')}: {_f(b['diff'])} "
                    f"{_iv(b['low'], b['high'])} ({noise})."]
    if p["per_language"]:
        rows = [[x["language"], _f(x["diff"]), _iv(x["low"], x["high"])]
                for x in p["per_language"]]
        out += ["", _table(rows, ["language", "difference", "cluster-bootstrap bounds"])]
    if p["clustered_mcnemar"]:
        rows = [[m["seed"], m["treatment_only"], m["control_only"], m["clusters"],
                 _f(m["chi2"], ".2f"), _f(m["p"], ".3g")] for m in p["clustered_mcnemar"]]
        out += ["", _table(rows, ["seed pair", "treatment only right", "control only right",
                                  "source items", "clustered X2", "p"])]
    return out


def doc_power(alpha: float) -> str:
    return f"80% power at one-sided alpha {alpha}"


def render_markdown(doc: Mapping[str, Any]) -> str:
    """Markdown report from the dict of ``audit_to_dict``."""
    alpha = doc["plan"]["alpha"]
    scale = f"{doc['scale']['profile']}/{doc['scale']['model']}"
    out = [f"# {doc['title']}", "", _scale_line(doc), "", *_summary(doc)]
    out += ["", "Effects are treatment minus control in accuracy points, with the one-sided 95% "
                "bounds; details per claim below."]
    if doc["imported"]:
        out += ["", "The audited numbers were imported, not produced by this pipeline: property "
                    "checks of this implementation do not apply."]
    out += ["", "## Methods", ""] + doc["plan"]["text"]
    sc = doc["scale"]
    commits = ", ".join(c or "unknown" for c in sc["git_commits"]) or "n/a"
    revisions = ", ".join(r or "unknown" for r in sc["data_revisions"]) or "n/a"
    out += ["", f"Results: `{doc['results_dir']}` ({sc['n_files']} metrics files); params hash "
                f"`{sc['params_hash']}`; commit(s) {commits}; data revision(s) {revisions}."]
    out += [f"- warning: {w}" for w in doc["warnings"]]
    if doc["budgets_cut_short"]:
        out += ["", "Budgets that cut work short:", ""]
        out += [f"- {b}" for b in doc["budgets_cut_short"]]
    cs = doc["codeswitch"]
    if cs["dictionary_share"] is not None:
        out += ["", f"Code-switch dictionary-translation share (mean over runs, evaluation only): "
                    f"{100 * cs['dictionary_share']:.2f}%"
                + (" (noisy: below 5%, so SALT reduces to mixup with noise)." if cs["noisy"]
                   else ".")]
    for task, block in cs["per_language"].items():
        rows = [[lang, _f(v["records"], ".0f"), _f(v["set_size"], ".0f"),
                 _pct(v["rate_per_token"]), _pct(v["rate_per_candidate"]),
                 _pct(v["cap_bound_share"]), _pct(v["leak_rate"]), _pct(v["dictionary_share"]),
                 _pct(v["precision_by_type"]), _pct(v["content_precision_by_type"]),
                 ", ".join(v["top_pairs"])]
                for lang, v in block["per_language"].items()]
        arm = f"; arm: {block['arm']}" if block.get("arm") else ""
        out += ["", f"Code-switch quality, {task} (mean over runs{arm}; dictionary figures are "
                    "MUSE, evaluation only; precision by type = share of distinct "
                    "substitution pairs that are dictionary translations):", "",
                _table(rows, ["language", "records", "target set", "substituted tokens",
                              "per candidate", "cap bound (pairs)", "leak", "dictionary "
                              "translations", "precision by type", "content words",
                              "top pairs"])]
    if doc["plot"]:
        out += ["", f"![per-language differences with the claimed gain]({doc['plot']})"]
    out += ["", "## Consistency between claims", ""]
    out += [f"- {f['kind']} ({', '.join(f['claims'])}): {f['text']}"
            for f in doc["consistency_flags"]] or ["- none"]
    for c in doc["claims"]:
        mark = "verified" if c["seed_verified"] else "not verified"
        out += ["", f"## {c['id']}: {c['verdict']}", "", f"{c['text']} (source: {mark}"
                + (f", confidence {c['seed_confidence']}" if c["seed_confidence"] is not None
                   else "") + ")."]
        if c["note"]:
            out += ["", f"Note: {c['note']}"]
        if c["parts"]:
            for p in c["parts"]:
                out += _part_section(c, p, alpha, scale)
        else:
            out += ["", c["reason"]]
            if c["ran_on"]:
                out += ["", f"Ran on: {c['ran_on']}."]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- plot and files


def _plot_panels(claims: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One panel per task and language set with something measurable; every claim on those
    languages contributes its claimed gain as a reference line."""
    panels: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for c in claims:
        for p in c["parts"]:
            if not p["per_language"]:
                continue
            key = (p["task"], tuple(x["language"] for x in p["per_language"]))
            panel = panels.setdefault(key, {"task": p["task"], "rows": p["per_language"],
                                            "claims": []})
            panel["claims"].append((c["id"], p["claimed_gain"]))
    return list(panels.values())


def plot_differences(doc: Mapping[str, Any], path: Path) -> None:
    """Per-language differences with cluster-bootstrap bounds and the claimed gains drawn as
    reference lines; panels with nothing measurable are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _plot_panels(doc["claims"])
    if not panels:  # the file is still written, so no stale plot of an earlier audit survives
        fig, ax = plt.subplots(figsize=(10, 1.6))
        ax.axis("off")
        ax.text(0.5, 0.5, "No per-language difference is measurable in this audit "
                "(see claims.md for why).", ha="center", va="center")
        fig.savefig(path, dpi=100, metadata={"Software": None})
        plt.close(fig)
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)), squeeze=False)
    styles = ("--", ":", "-.")
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        rows = panel["rows"]
        x = list(range(len(rows)))
        y = [r["diff"] for r in rows]
        err = [[r["diff"] - r["low"] if r["low"] is not None else 0.0 for r in rows],
               [r["high"] - r["diff"] if r["high"] is not None else 0.0 for r in rows]]
        ax.errorbar(x, y, yerr=err, fmt="o", capsize=3, label="difference (95% bounds)")
        ax.axhline(0.0, color="grey", lw=0.8)
        for i, (cid, gain) in enumerate(panel["claims"]):
            ax.axhline(gain, color="tab:red", ls=styles[i % len(styles)], lw=1,
                       label=f"{cid} claims {gain:+.1f}")
        ax.set_xticks(x, [r["language"] for r in rows])
        ax.set_ylabel("difference (pt)")
        ax.set_title(f"{panel['task']}: per-language treatment - control "
                     f"(profile {doc['scale']['profile']}, model {doc['scale']['model']})")
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def write_report(audit: Audit, out_dir: str | Path) -> dict[str, Path]:
    """Write ``claims.md``, ``claims.json`` and the plot (a note when nothing is measurable)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = audit_to_dict(audit)
    paths = {"json": out / "claims.json", "markdown": out / "claims.md"}
    paths["json"].write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(doc), encoding="utf-8")
    paths["plot"] = out / PLOT_NAME
    plot_differences(doc, paths["plot"])
    return paths


def summary_lines(audit: Audit) -> list[str]:
    """One printable line per claim: id, verdict, effect and reason."""
    doc = audit_to_dict(audit)
    out = []
    for c in doc["claims"]:
        effect = "; ".join(_effect(p) for p in c["parts"]) if c["parts"] else "property check"
        out.append(_cell(f"{c['id']:<4} {c['verdict']:<22} {effect} - {_short_reason(c)}"))
    return out
