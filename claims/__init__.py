"""The audit suite: every claim of the SALT seed as an executable check with a verdict.

``registry`` lists the claims, ``results`` loads and validates a folder of metrics files,
``stats`` computes the tests and verdicts, ``report`` writes ``reports/claims.{md,json}``.
Run ``python -m claims audit RESULTS_DIR``.
"""

from .registry import CLAIMS, Claim, PaperValue, get_claim
from .report import write_report
from .results import ResultsError, ResultSet, load_properties, load_results
from .stats import Audit, audit

__all__ = [
    "CLAIMS",
    "Audit",
    "Claim",
    "PaperValue",
    "ResultSet",
    "ResultsError",
    "audit",
    "get_claim",
    "load_properties",
    "load_results",
    "write_report",
]
