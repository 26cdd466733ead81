"""The ten claims of the seed document (design.md §2) as data.

Each claim records the seed's own wording (shortened), its verification mark and confidence, what
kind of check decides it and the name of that check, plus the paper's numbers for the statistical
claims. Mechanism and property claims (C2-C8) are decided by checks in ``claims.properties`` whose
outcomes reach the report through ``reports/properties.json``; the statistical ones (C1, C9, C10) by
``claims.stats``.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("statistical", "mechanism", "property")
PAWSX_NON_EN = ("de", "es", "fr", "ja", "ko", "zh")

Metric = str | tuple[str, ...]
"""Which languages a macro average covers: ``"all"``, ``"without_en"``, ``"under_resourced"``
or an explicit tuple of language codes."""


@dataclass(frozen=True)
class PaperValue:
    """A number the paper reports, in percentage points, for one task and language set."""

    task: str  # xnli | pawsx
    metric: Metric  # the languages averaged
    description: str  # what the seed says, e.g. "15 languages"
    gain: float  # SALT minus baseline, points
    salt: float | None = None  # absolute SALT average, points (C9, C10 only)
    baseline: float | None = None  # absolute mBERT average, points (C9, C10 only)


@dataclass(frozen=True)
class Claim:
    """One claim of the seed and how this suite decides it."""

    id: str
    text: str  # seed wording, shortened
    seed_verified: bool  # the seed's own verification mark
    seed_confidence: float  # the seed's confidence score
    kind: str  # statistical | mechanism | property
    check: str  # dotted name of the check that decides it
    paper: tuple[PaperValue, ...] = ()
    note: str = ""

    @property
    def is_statistical(self) -> bool:
        """Decided by ``claims.stats`` from metrics files (not by a property check)."""
        return self.kind == "statistical"


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "C1",
        "SALT improves average accuracy by +1.4 on XNLI (15 languages) and +4.1 on PAWS-X "
        "(6 languages)",
        True, 0.19, "statistical", "claims.stats.gain_verdict",
        paper=(
            PaperValue("xnli", "all", "15 languages (English included)", gain=1.4),
            PaperValue("pawsx", PAWSX_NON_EN, "6 non-English languages", gain=4.1),
        ),
        note="'%' read as percentage points; PAWS-X's 6 languages are de es fr ja ko zh.",
    ),
    Claim("C2", "a modified MLM distils cross-lingual token translation pairs",
          True, 0.25, "mechanism", "claims.properties.check_c2"),
    Claim("C3", "the MLM predicts tokens only in a specific target language",
          True, 0.23, "property", "claims.properties.check_c3"),
    Claim("C4", "substitutions with high enough predicted probability are used for code-switching",
          True, 0.25, "property", "claims.properties.check_c4"),
    Claim("C5", "synonyms in the source language are predicted with a different threshold",
          False, 0.12, "property", "claims.properties.check_c5",
          note="implemented as an option, off unless a profile turns it on"),
    Claim("C6", "online self-augmentation by cross-lingual embedding mixup",
          True, 0.15, "mechanism", "claims.properties.check_c6"),
    Claim("C7", "h_i = r*h_si + (1-r)*h_ti with r = {r_j}, r_j in [0, 1] a random vector",
          True, 0.27, "property", "claims.properties.check_c7"),
    Claim("C8", "r is sampled anew at each training step for each instance",
          True, 0.16, "property", "claims.properties.check_c8",
          note="a property with a statistical side (distribution of r across steps)"),
    Claim(
        "C9", "XNLI 15-language average: SALT 69.8 vs mBERT 67.8",
        False, 0.10, "statistical", "claims.stats.absolute_verdict",
        paper=(PaperValue("xnli", "all", "15 languages", gain=2.0, salt=69.8, baseline=67.8),),
    ),
    Claim(
        "C10", "XNLI average without English: SALT 66.8 vs mBERT 65.4",
        False, 0.10, "statistical", "claims.stats.absolute_verdict",
        paper=(PaperValue("xnli", "without_en", "14 non-English languages", gain=1.4, salt=66.8,
                          baseline=65.4),),
        note="65.4 is also the commonly cited mBERT 15-language XNLI average of the XTREME paper "
             "(Hu et al. 2020; recalled, not verified here), so 'without English' may be a "
             "mislabel.",
    ),
)

XTREME_MBERT_XNLI_AVG = 65.4
"""mBERT's 15-language XNLI average as commonly cited from XTREME (recalled, not verified here)."""


def get_claim(claim_id: str) -> Claim:
    """Look a claim up by id, with an error listing the known ids."""
    for claim in CLAIMS:
        if claim.id == claim_id:
            return claim
    raise KeyError(f"unknown claim {claim_id!r}; known: {[c.id for c in CLAIMS]}")


def property_claims() -> tuple[Claim, ...]:
    """Claims decided by property checks (their outcomes come from properties.json)."""
    return tuple(c for c in CLAIMS if not c.is_statistical)


def statistical_claims() -> tuple[Claim, ...]:
    """Claims decided from metrics files by ``claims.stats``."""
    return tuple(c for c in CLAIMS if c.is_statistical)
