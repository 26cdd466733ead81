"""Command line of the audit suite.

- ``audit DIR [-o OUT]``: audit a folder of metrics files and write the report. ``-o`` is required
  for any folder other than the project's ``results/metrics`` and must not be ``reports`` when
  the numbers are external (a file's ``provenance.origin.kind`` is ``import``): an external audit
  never touches the project's own report, and this implementation's property checks do not
  apply to numbers it did not produce.
- ``properties``: run the property checks (C2-C8) on this implementation.
- ``import FORMAT SRC -o DIR``: metrics files (schema v2) from hf / lm-eval / xtreme / csv sources.
- ``check-table TABLE``: check a published table on its own (``claims.tables``).
- ``plan``: power analysis (``claims.power``).

Exit status: 0 done (check-table: no error-level finding), 1 check-table found errors, 2 the
input cannot be used (the message names the file and the field).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from salt.schema import SchemaError

from .results import ResultsError, load_properties, load_results
from .stats import ALPHA, audit

PROJECT_RESULTS = Path("results/metrics")
PROJECT_REPORTS = Path("reports")


def _audit_parser(sub) -> None:
    p = sub.add_parser("audit", help="audit a folder of metrics files and write the report")
    p.add_argument("results_dir", type=Path, help="folder of metrics files (*.json, recursive)")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="report folder (default reports, only for the project's results/metrics)")
    p.add_argument("--expected-params-hash", default=None,
                   help="refuse results whose provenance.params_hash differs")
    p.add_argument("--properties", type=Path, default=None,
                   help="property-check outcomes (default: OUT/properties.json if present; "
                        "ignored for external numbers)")
    p.add_argument("--claims", type=Path, default=None,
                   help="claims file (YAML, claims.registry.load_claims); default SALT's claims")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (printed in the report)")
    p.add_argument("--alpha", type=float, default=ALPHA, help="significance level")


def _import_parser(sub) -> None:
    from .importers import IMPORTERS

    p = sub.add_parser("import", help="convert numbers this project did not produce into "
                                      "metrics files (schema v2)")
    p.add_argument("format", choices=sorted(IMPORTERS))
    p.add_argument("src", type=Path, help="source file or folder")
    p.add_argument("-o", "--out", type=Path, required=True, help="folder for the metrics files")
    p.add_argument("--system", default=None, help="arm name (csv: from the system column)")
    p.add_argument("--seed", type=int, default=None, help="seed of the run, when the source "
                                                          "does not say")
    p.add_argument("--task", choices=("xnli", "pawsx"), default=None)
    p.add_argument("--split", choices=("test", "dev"), default=None,
                   help="the split the numbers are on (gives the known size per language)")
    p.add_argument("--n-per-language", type=int, default=None, help="items per language")
    p.add_argument("--model", default=None, help="model, when the source does not say")
    p.add_argument("--profile", default=None, help="recorded as stated; the scale caveat is "
                                                   "decided from model and sizes")
    p.add_argument("--language", default=None, help="hf: evaluation language of a single run")
    p.add_argument("--scale", choices=("percent", "fraction"), default=None,
                   help="csv: how accuracies are written (detected when not given)")
    p.add_argument("--data-dir", default=None, help="gold labels (default $SALT_DATA_DIR)")


def _table_parser(sub) -> None:
    p = sub.add_parser("check-table", help="check a published accuracy table on its own")
    p.add_argument("table", type=Path, help="CSV, markdown pipe table or LaTeX tabular")
    p.add_argument("--task", choices=("xnli", "pawsx"), default=None,
                   help="default: from the language columns")
    p.add_argument("--split", choices=("test", "dev"), default=None,
                   help="split the table reports (gives the known size per language)")
    p.add_argument("--n", type=int, default=None, help="items per language")
    p.add_argument("--claims", type=Path, default=None, help="claims file (YAML)")
    p.add_argument("--claim", default=None, help="claim id whose languages the table must have")
    p.add_argument("--quiet", action="store_true", help="omit info lines (intervals)")


def _plan_parser(sub) -> None:
    try:
        from . import power
    except ImportError:
        sub.add_parser("plan", help="power analysis (needs claims.power)")
        return
    p = sub.add_parser("plan", help="power analysis: seeds and items needed per claim")
    power.add_arguments(p)
    p.set_defaults(_power=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m claims",
                                     description="Audit claims against metrics files and "
                                                 "published tables.")
    sub = parser.add_subparsers(dest="command", required=True)
    _audit_parser(sub)
    q = sub.add_parser("properties",
                       help="run the property checks (C2-C8) on the implementation and write "
                            "their outcomes (needs $SALT_DATA_DIR)")
    q.add_argument("--out", type=Path, default=Path("reports/properties.json"),
                   help="outcomes file, read by 'audit --properties'")
    q.add_argument("--seed", type=int, default=0, help="Hypothesis seed (printed with each check)")
    q.add_argument("--work", type=Path, default=None,
                   help="pipeline folder whose written code-switched data C3/C4 also check "
                        "(default: work, skipped when it has none; a folder named here must "
                        "hold codeswitch/*.jsonl, e.g. study/work)")
    _import_parser(sub)
    _table_parser(sub)
    _plan_parser(sub)
    return parser


def run_properties(out: Path, seed: int, work: Path | None = None) -> int:
    """Run every property check on the real implementation and write ``out``; C3/C4 also
    check the written code-switched data under ``work`` (default ``work``, when it has any)."""
    from salt.data import DataError

    from .properties import run_all

    if work is not None and not sorted((work / "codeswitch").glob("*.jsonl")):
        print(f"error: --work {work}: no {work.as_posix()}/codeswitch/*.jsonl to check (run "
              "the pipeline there first)", file=sys.stderr)
        return 2
    try:
        outcomes = run_all(out, seed=seed, work=work if work is not None else "work")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for cid, entry in outcomes.items():
        print(f"{cid}: {entry['verdict']} ({entry['runtime_s']:.1f} s) {entry['evidence'][:150]}")
    print(f"property outcomes: {out} (Hypothesis seed {seed})")
    return 0


def load_claims_file(path: Path):
    """Claims from a user's YAML file through ``claims.registry.load_claims``; a bad file is a
    ``ResultsError`` carrying the loader's message (file and key)."""
    from . import registry

    try:
        return tuple(registry.load_claims(path))
    except ValueError as err:  # registry.ClaimsError names the file and key
        raise ResultsError(str(err)) from None


def claim_languages(claim, task: str | None, table) -> tuple[str, tuple[str, ...]]:
    """The task and languages a claim's parts average (``Claim.paper``: task, languages)."""
    from salt.tasks import TASKS

    from .tables import TableError, infer_task

    parts = tuple(getattr(claim, "paper", ()))
    tasks = sorted({p.task for p in parts})
    if task is None:
        task = tasks[0] if len(tasks) == 1 else infer_task(table)
    langs = {lang for p in parts if p.task == task for lang in p.languages}
    if not langs:
        raise TableError(f"claim {claim.id} states no number for task {task} "
                         f"(its parts: {tasks or 'none'})")
    return task, tuple(lang for lang in TASKS[task].languages if lang in langs)


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def imported_files(root: Path) -> list[Path]:
    """Metrics files under ``root`` whose provenance says they were imported."""
    out = []
    for path in sorted(root.rglob("*.json")):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # load_results reports unreadable files with their name
        origin = (obj.get("provenance") or {}).get("origin") if isinstance(obj, dict) else None
        if isinstance(origin, dict) and origin.get("kind") == "import":
            out.append(path)
    return out


def audit_target(results_dir: Path, out: Path | None) -> tuple[Path, bool]:
    """Where the report goes and whether the numbers are external (any file imported, i.e.
    ``provenance.origin.kind == "import"``). ``-o`` is required for any folder but the
    project's ``results/metrics``, and external numbers never go to ``reports/``."""
    imported = imported_files(results_dir) if results_dir.is_dir() else []
    if out is None:
        if not _same(results_dir, PROJECT_RESULTS):
            raise ResultsError(f"{results_dir}: not the project's {PROJECT_RESULTS}; pass -o OUT "
                               "(an audit of other numbers never writes to reports/)")
        out = PROJECT_REPORTS
    inside = out.resolve() == PROJECT_REPORTS.resolve() or \
        PROJECT_REPORTS.resolve() in out.resolve().parents
    if imported and inside:
        raise ResultsError(f"-o {out}: refusing to write an audit of external numbers "
                           f"({len(imported)} imported file(s), e.g. {imported[0]}) into the "
                           "project's own report; choose another folder")
    return out, bool(imported)


def run_audit(args: argparse.Namespace) -> int:
    from .report import summary_lines, write_report

    try:
        out, external = audit_target(args.results_dir, args.out)
        if args.properties is not None and not args.properties.is_file():
            raise ResultsError(f"{args.properties}: properties file not found")
        # this implementation's property checks say nothing about numbers it did not produce
        # (claims.verdicts marks them "not applicable" from provenance.origin.kind)
        props_path = None if external else (args.properties or out / "properties.json")
        properties = load_properties(props_path)
        results = load_results(args.results_dir, args.expected_params_hash)
        kwargs = {}
        if args.claims is not None:
            kwargs["claims"] = load_claims_file(args.claims)
    except SchemaError as err:  # ResultsError included
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = audit(results, properties, alpha=args.alpha, seed=args.seed,
                   properties_source=str(props_path) if properties else None, **kwargs)
    paths = write_report(result, out)
    for line in summary_lines(result):
        print(line)
    print(f"report: {paths['markdown']} (profile {results.scale.profile or 'unknown'}, "
          f"bootstrap seed {args.seed}{', external numbers' if external else ''})")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from .importers import ImportOptions, SourceError, import_source

    opts = ImportOptions(system=args.system, seed=args.seed, task=args.task, split=args.split,
                         n_per_language=args.n_per_language, model=args.model,
                         profile=args.profile, language=args.language, scale=args.scale,
                         data_dir=args.data_dir)
    try:
        written = import_source(args.format, args.src, args.out, opts)
    except (SourceError, SchemaError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        m = json.loads(path.read_text(encoding="utf-8"))
        info = m["extra"]["imported"]
        totals = sorted(set(info["totals_from"].values()))
        print(f"{path}: {m['task']} {m['system']} seed={m['seed']} split={m['provenance']['split']}"
              f" model={m['provenance']['model']} languages={len(m['languages'])} "
              f"predictions={'yes' if m['predictions'] else 'no (summary only: unverifiable)'}")
        print(f"  totals: {'; '.join(totals)}")
        if info["missing_languages"]:
            print(f"  missing languages: {info['missing_languages']}")
        for note in info["notes"]:
            print(f"  note: {note}")
    return 0


def run_check_table(args: argparse.Namespace) -> int:
    from .tables import TableError, check_table, decide_n, infer_task, read_table

    try:
        table = read_table(args.table)
        languages, task = None, args.task
        if (args.claims is None) != (args.claim is None):
            raise TableError("--claims FILE and --claim ID go together")
        if args.claims is not None:
            found = [c for c in load_claims_file(args.claims) if c.id == args.claim]
            if not found:
                raise TableError(f"{args.claims}: no claim {args.claim!r}")
            task, languages = claim_languages(found[0], task, table)
        task = task or infer_task(table)
        n, n_from = decide_n(task, args.split, args.n)
    except (TableError, SchemaError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    findings = check_table(table, task, n, n_from, languages, args.claim)
    for f in findings:
        if not (args.quiet and f.level == "info"):
            print(f.line())
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    print(f"{errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def run_plan(args: argparse.Namespace) -> int:
    try:
        from . import power
    except ImportError:
        print("error: this build has no claims.power; 'plan' is unavailable", file=sys.stderr)
        return 2
    return power.run(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not (args.command == "plan" and not hasattr(args, "_power")):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    handlers = {"properties": lambda a: run_properties(a.out, a.seed, a.work), "audit": run_audit,
                "import": run_import, "check-table": run_check_table, "plan": run_plan}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
