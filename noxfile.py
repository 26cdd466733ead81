"""Sessions: tests, reproduce, current, claims (audit report), bench, mutants, gpu, lint.

Sessions run in the environment nox itself runs in (``scripts/bootstrap`` makes ``.venv``), because
installing torch per session would cost minutes and gigabytes; nox only orders and names the work.
Tools are called as ``python -m`` of that interpreter, so PATH need not point into the venv.
The data folder is found by ``salt.data.data_dir()`` (``SALT_DATA_DIR``, else ``../shared/data``
beside the repository), the same lookup ``dvc repro`` and the tests use.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]
PY = sys.executable
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}


class _NoUvNotice(logging.Filter):
    """nox looks for uv even with the 'none' backend; these sessions never use it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "uv binary not found" not in record.getMessage()


logging.getLogger("nox").addFilter(_NoUvNotice())


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole project."""
    session.run(PY, "-m", "ruff", "check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, offline. Verbose, so each test is named as it starts (the DVC smoke run
    takes minutes); the five slowest are listed at the end."""
    session.run(PY, "-m", "ruff", "check", ".")
    session.run(PY, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--durations=5",
                *session.posargs, env=OFFLINE)


@nox.session
def reproduce(session: nox.Session) -> None:
    """Clone HEAD into a temp folder, run a profile, compare every metrics file with the
    committed reference: `nox -s reproduce` (smoke), `nox -s reproduce -- proxy`,
    `nox -s reproduce -- smoke --update` (rewrite the reference)."""
    session.run(PY, "-m", "salt.reproduce", *session.posargs, env=OFFLINE)


@nox.session
def current(session: nox.Session) -> None:
    """Is the committed report current? Compares dvc.lock with the working code and params."""
    session.run(PY, "-m", "salt.lockcheck", *session.posargs, env=OFFLINE)


def _claims_args(posargs: list[str]) -> tuple[str, str, list[str]]:
    """(metrics folder, output folder, extra audit options) of `nox -s claims -- [DIR] [-o OUT]`.

    Auditing another folder never writes into the committed reports/: its default output is a
    folder named after DIR (``audit-<name of DIR>``)."""
    args = list(posargs)
    out = None
    for flag in ("-o", "--out"):
        if flag in args:
            at = args.index(flag)
            if at + 1 >= len(args):
                raise SystemExit(f"nox -s claims: {flag} needs a folder")
            out = args[at + 1]
            del args[at:at + 2]
    if args and not args[0].startswith("-"):
        results = args.pop(0)
        out = out or f"audit-{Path(results).resolve().name}"
    else:
        results, out = "results/metrics", out or "reports"
    return results, out, args


@nox.session
def claims(session: nox.Session) -> None:
    """Audit the claims: `nox -s claims` (committed results -> reports/) or
    `nox -s claims -- DIR [-o OUT] [opts]` (metrics produced elsewhere -> OUT, default
    audit-<DIR name>/). Runs the property checks, then the statistical audit."""
    results, out, extra = _claims_args(session.posargs)
    Path(out).mkdir(parents=True, exist_ok=True)
    properties = str(Path(out) / "properties.json")
    session.run(PY, "-m", "claims", "properties", "--out", properties, env=OFFLINE)
    session.run(PY, "-m", "claims", "audit", results, "--out", out, "--properties", properties,
                *extra, env=OFFLINE)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks side by side on this machine: writes reports/bench.md and bench.json."""
    session.run(PY, "-m", "benchmarks", *session.posargs, env=OFFLINE)


@nox.session
def mutants(session: nox.Session) -> None:
    """Realistic bugs of the method against the claim checks; reports the kill rate."""
    session.run(PY, "-m", "claims.mutants", *session.posargs, env=OFFLINE)


@nox.session
def gpu(session: nox.Session) -> None:
    """The smoke profile on CUDA; fails unless every stage's model ran on the GPU."""
    session.run(PY, "scripts/gpu_check.py", *session.posargs, env=OFFLINE)
