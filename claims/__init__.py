"""The audit suite: every claim of the SALT seed as an executable check with a verdict.

``registry`` loads the claims (``claims.yaml``), ``results`` loads and validates a folder of
metrics files, ``stats`` holds the tests, ``verdicts`` the analysis plan and verdict rules,
``power`` the power analysis, ``report`` writes ``reports/claims.{md,json}``.
Run ``python -m claims audit RESULTS_DIR``.
"""

from .registry import CLAIMS, Claim, PaperValue, get_claim, load_claims

__all__ = ["CLAIMS", "Claim", "PaperValue", "get_claim", "load_claims"]
