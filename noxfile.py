"""Sessions: tests, claims (audit report), bench, lint.

Sessions run in the environment nox itself runs in (``scripts/bootstrap`` makes ``.venv``), because
installing torch per session would cost minutes and gigabytes; nox only orders and names the work.
Tools are called as ``python -m`` of that interpreter, so PATH need not point into the venv.
"""

from __future__ import annotations

import os
import sys

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]
PY = sys.executable
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "DVC_NO_ANALYTICS": "1"}


def _env() -> dict[str, str]:
    env = dict(OFFLINE)
    if "SALT_DATA_DIR" not in os.environ and os.path.isdir("../shared/data"):
        env["SALT_DATA_DIR"] = os.path.abspath("../shared/data")
    return env


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole project."""
    session.run(PY, "-m", "ruff", "check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (offline; needs SALT_DATA_DIR or ../shared/data)."""
    session.run(PY, "-m", "ruff", "check", ".")
    session.run(PY, "-m", "pytest", "-p", "no:cacheprovider", *session.posargs, env=_env())


@nox.session
def claims(session: nox.Session) -> None:
    """Audit the claims: `nox -s claims` (committed results) or `nox -s claims -- DIR [opts]`.

    Runs the property checks on the implementation (reports/properties.json), then the
    statistical audit of the metrics folder (reports/claims.md, claims.json, plot).
    """
    results = session.posargs[0] if session.posargs else "results/metrics"
    extra = session.posargs[1:]
    session.run(PY, "-m", "claims", "properties", "--out", "reports/properties.json",
                env=_env())
    session.run(PY, "-m", "claims", "audit", results, "--out", "reports",
                "--properties", "reports/properties.json", *extra, env=_env())


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks side by side on this machine: writes reports/bench.md and bench.json."""
    session.run(PY, "-m", "salt.bench", *session.posargs, env=_env())
