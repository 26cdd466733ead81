"""Command line: ``python -m claims audit RESULTS_DIR [--out reports] ...`` and
``python -m claims properties [--out reports/properties.json] [--seed 0]``.

Exit status 0 when the report (or the property outcomes) was written, 2 when the input cannot be
audited (the message names the file and the field) or the property checks cannot run (no data).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from salt.schema import SchemaError

from .report import summary_lines, write_report
from .results import ResultsError, load_properties, load_results
from .stats import ALPHA, audit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m claims",
                                     description="Audit SALT's claims against metrics files.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("audit", help="audit a folder of metrics files and write the report")
    p.add_argument("results_dir", type=Path, help="folder of metrics files (*.json, recursive)")
    p.add_argument("--out", type=Path, default=Path("reports"), help="report folder")
    p.add_argument("--expected-params-hash", default=None,
                   help="refuse results whose provenance.params_hash differs")
    p.add_argument("--properties", type=Path, default=None,
                   help="property-check outcomes (default: OUT/properties.json if present)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (printed in the report)")
    p.add_argument("--alpha", type=float, default=ALPHA, help="significance level")
    q = sub.add_parser("properties",
                       help="run the property checks (C2-C8) on the implementation and write "
                            "their outcomes (needs $SALT_DATA_DIR)")
    q.add_argument("--out", type=Path, default=Path("reports/properties.json"),
                   help="outcomes file, read by 'audit --properties'")
    q.add_argument("--seed", type=int, default=0, help="Hypothesis seed (printed with each check)")
    return parser


def run_properties(out: Path, seed: int) -> int:
    """Run every property check on the real implementation and write ``out``."""
    from salt.data import DataError

    from .properties import run_all

    try:
        outcomes = run_all(out, seed=seed)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for cid, entry in outcomes.items():
        print(f"{cid}: {entry['verdict']} ({entry['runtime_s']:.1f} s) {entry['evidence'][:150]}")
    print(f"property outcomes: {out} (Hypothesis seed {seed})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "properties":
        return run_properties(args.out, args.seed)
    try:
        if args.properties is not None and not args.properties.is_file():
            raise ResultsError(f"{args.properties}: properties file not found")
        props_path = args.properties or args.out / "properties.json"
        properties = load_properties(props_path)
        results = load_results(args.results_dir, args.expected_params_hash)
    except SchemaError as err:  # ResultsError included
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = audit(results, properties, alpha=args.alpha, seed=args.seed,
                   properties_source=str(props_path) if properties else None)
    paths = write_report(result, args.out)
    for line in summary_lines(result):
        print(line)
    print(f"report: {paths['markdown']} ({results.scale.profile} scale, "
          f"bootstrap seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
