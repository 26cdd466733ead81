"""Command line: one subcommand per pipeline stage (see dvc.yaml), plus ``plan`` and ``study``.

    salt prepare | model | vocab | mlm | codeswitch --task T |
         train --task T --system S --seed N | evaluate --task T --system S --seed N | plan |
         study (the study profile in resumable chunks: salt study --help)

Every stage command reads ``params.yaml`` (``--params``), validates every group of every profile
(``salt.config.check_all``), builds its stage's config for the profile it names (``--profile``
overrides) and runs ``salt.stages.<stage>.run`` under ``--workdir`` (default ``.``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from salt.config import ConfigError, check_all, load_params
from salt.data import DataError
from salt.stages import STAGES
from salt.workdir import Paths, dump

HELP = {"prepare": "select the profile's rows and write them as JSONL",
        "model": "materialise the model source as a local folder",
        "vocab": "build each language's sub-word set",
        "mlm": "train an MLM head where the source lacks one; measure fill-mask accuracy",
        "codeswitch": "code-switch one task's English training data",
        "train": "train one task x system x seed",
        "evaluate": "evaluate one task x system x seed and write its metrics"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--profile", default=None, help="override params.yaml's profile")
    parser.add_argument("--workdir", type=Path, default=Path("."))
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGES:
        p = sub.add_parser(name, help=HELP[name])
        if name in ("codeswitch", "train", "evaluate"):
            p.add_argument("--task", required=True)
        if name in ("train", "evaluate"):
            p.add_argument("--system", required=True, choices=("baseline", "salt"))
            p.add_argument("--seed", required=True, type=int)
    plan = sub.add_parser("plan", add_help=False,
                          help="print each stage's work, time and disk for a profile "
                               "(salt plan --help)")
    plan.add_argument("plan_args", nargs="*", help="options of salt plan (salt plan --help)")
    study = sub.add_parser("study", add_help=False,
                           help="run the study profile in resumable chunks (salt study --help)")
    study.add_argument("study_args", nargs=argparse.REMAINDER,
                       help="options of salt study (salt study --help)")
    return parser


def _plan(argv: list[str]) -> int:
    """``salt plan ...``: its own options (``salt.plan.add_arguments``), imported by name so the
    planner is no dependency of the stages."""
    planning = importlib.import_module("salt.plan")
    parser = argparse.ArgumentParser(prog="salt plan")
    planning.add_arguments(parser)
    return planning.run(parser.parse_args(argv))


def _study(argv: list[str]) -> int:
    """``salt study ...``: the chunked study runner (``salt.study``), imported by name like the
    planner so it is no dependency of the stages."""
    return importlib.import_module("salt.study").main(argv)


def _stage_name(args) -> str:
    parts = [args.command] + [str(getattr(args, k)) for k in ("task", "system", "seed")
                              if getattr(args, k, None) is not None]
    return "-".join(parts)


def _record_timing(args, profile: str, started: float) -> None:
    """Wall time and peak memory of this command, for the benchmark's pipeline table."""
    import resource

    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    dump(Paths(args.workdir).work / "timings" / f"{_stage_name(args)}.json",
         {"command": " ".join(sys.argv[1:]) or args.command, "profile": profile,
          "finished_utc": datetime.now(timezone.utc).isoformat(),
          "wall_s": round(time.perf_counter() - started, 2),
          "peak_rss_mb": round(rss_kb / 1024, 1)})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["plan"]:  # the planner parses its own options
        return _plan(argv[1:])
    if argv[:1] == ["study"]:  # so does the study runner
        return _study(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "plan":
        return _plan(args.plan_args)
    if args.command == "study":
        return _study(args.study_args)
    started = time.perf_counter()
    # imported by name: a stage's command runs (and DVC tracks) only that stage's code
    stage = importlib.import_module(f"salt.stages.{args.command}")
    try:
        params = load_params(args.params, args.profile)
        check_all(params)
        config = stage.configure(params, args)
        stage.run(config, Paths(args.workdir))
    except (ConfigError, DataError, FileNotFoundError, *stage.ERRORS) as err:
        # bad input or state, named by file/key: reported without a traceback
        print(f"salt {args.command}: error: {err}", file=sys.stderr)
        return 2
    _record_timing(args, params.profile, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
