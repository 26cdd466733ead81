"""The claims an audit tests, as data: ``claims/claims.yaml`` (SALT's) or a file the user writes.

``load_claims(path)`` reads the YAML with ``yaml.safe_load`` and validates it with pydantic; any
mistake is a ``ClaimsError`` naming the file and the key (``claims[3].parts[0].gain``). Arm names
are free (``arms: {treatment, control}``, the ``system`` of the metrics files). Statistical
claims carry one ``PaperValue`` per number the source reports; mechanism and property claims are
decided by the checks in ``claims.properties`` (outcomes read from ``properties.json``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from salt.tasks import TASKS

KINDS = ("statistical", "mechanism", "property")
DEFAULT_PATH = Path(__file__).with_name("claims.yaml")
ARM_NAME = r"[A-Za-z0-9_.+-]+"

Metric = str | tuple[str, ...]
"""Which languages a macro average covers: ``"all"``, ``"without_en"``, ``"under_resourced"``
or an explicit tuple of language codes."""

NAMED_GROUPS = ("all", "without_en", "under_resourced")


class ClaimsError(ValueError):
    """A claims file cannot be used; the message names the file and the key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Arms(_Frozen):
    """The two systems compared: ``treatment`` minus ``control``."""

    treatment: str = Field(pattern=f"^{ARM_NAME}$")
    control: str = Field(pattern=f"^{ARM_NAME}$")

    @model_validator(mode="after")
    def _distinct(self) -> Arms:
        if self.treatment == self.control:
            raise ValueError(f"treatment and control are both {self.treatment!r}")
        return self


class PaperValue(_Frozen):
    """One number the source reports for a task and language set, in percentage points."""

    task: str
    metric: Metric = Field(alias="languages")  # the languages averaged
    description: str
    gain: float  # claimed treatment minus control, points
    treatment: float | None = None  # claimed absolute treatment average (points), if given
    control: float | None = None  # claimed absolute control average (points), if given

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
        return task

    @field_validator("metric", mode="before")
    @classmethod
    def _metric(cls, value: Any) -> Metric:
        if isinstance(value, list):
            return tuple(value)
        return value

    @model_validator(mode="after")
    def _languages_of_task(self) -> PaperValue:
        spec = TASKS[self.task]
        if isinstance(self.metric, tuple):
            unknown = [x for x in self.metric if x not in spec.languages]
            if unknown or not self.metric:
                raise ValueError(f"languages {unknown or '[]'} are not {self.task} languages "
                                 f"{list(spec.languages)}")
        elif self.metric not in NAMED_GROUPS:
            raise ValueError(f"languages {self.metric!r}: use one of {NAMED_GROUPS} or a list")
        if (self.treatment is None) != (self.control is None):
            raise ValueError("give both treatment and control absolute values, or neither")
        if self.treatment is not None and self.control is not None and abs(
                self.treatment - self.control - self.gain) > 0.05:
            raise ValueError(f"gain {self.gain} != treatment {self.treatment} - control "
                             f"{self.control}")
        return self

    @property
    def languages(self) -> tuple[str, ...]:
        """The task's languages this value averages, in the task's canonical order."""
        spec = TASKS[self.task]
        if isinstance(self.metric, tuple):
            return tuple(x for x in spec.languages if x in self.metric)
        return {"all": spec.languages, "without_en": spec.target_languages,
                "under_resourced": spec.under_resourced}[self.metric]


class Claim(_Frozen):
    """One claim of the source and how this suite decides it."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    text: str
    kind: Literal["statistical", "mechanism", "property"]
    seed_verified: bool = Field(alias="verified")  # the source's own verification mark
    seed_confidence: float | None = Field(default=None, alias="confidence")
    check: str = ""
    arms: Arms | None = None
    metric: Literal["accuracy"] = "accuracy"
    paper: tuple[PaperValue, ...] = Field(default=(), alias="parts")
    note: str = ""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _statistical_has_parts(self) -> Claim:
        if self.kind == "statistical" and (not self.paper or self.arms is None):
            raise ValueError("a statistical claim needs 'arms' and at least one entry in 'parts'")
        if self.kind != "statistical" and self.paper:
            raise ValueError(f"a {self.kind} claim has no 'parts' (it is decided by its check)")
        return self

    @property
    def is_statistical(self) -> bool:
        """Decided by the verdict rules from metrics files (not by a property check)."""
        return self.kind == "statistical"


class Reference(_Frozen):
    """A figure from the literature the consistency checks compare claimed numbers with."""

    name: str
    task: str
    languages: Metric
    value: float
    source: str
    verified: bool

    @field_validator("languages", mode="before")
    @classmethod
    def _metric(cls, value: Any) -> Metric:
        return tuple(value) if isinstance(value, list) else value


class ClaimsFile(_Frozen):
    """The whole file: claims (ids unique) and optional reference figures."""

    claims: tuple[Claim, ...] = Field(min_length=1)
    references: tuple[Reference, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> ClaimsFile:
        ids = [c.id for c in self.claims]
        dup = sorted({x for x in ids if ids.count(x) > 1})
        if dup:
            raise ValueError(f"duplicate claim ids {dup}")
        return self


def _loc(loc: tuple[Any, ...], claims: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if len(loc) >= 2 and loc[0] == "claims" and isinstance(loc[1], int) and loc[1] < len(claims):
        entry = claims[loc[1]]
        if isinstance(entry, dict) and "id" in entry:
            out += f" (claim {entry['id']})"
    return out


def load_file(path: str | Path | None = None) -> ClaimsFile:
    """Load and validate a claims file (default: SALT's ``claims/claims.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_PATH
    where = path.name if path == DEFAULT_PATH else str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClaimsError(f"{where}: claims file not found") from None
    except yaml.YAMLError as err:
        raise ClaimsError(f"{where}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ClaimsError(f"{where}: top level must be a mapping with key 'claims'")
    try:
        return ClaimsFile.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        claims = raw.get("claims") if isinstance(raw.get("claims"), list) else []
        msg = re.sub(r"^Value error, ", "", first["msg"])
        raise ClaimsError(f"{where}: key {_loc(tuple(first['loc']), claims)}: {msg}"
                          + (f" (and {err.error_count() - 1} more)" if err.error_count() > 1
                             else "")) from None


def load_claims(path: str | Path | None = None) -> tuple[Claim, ...]:
    """The claims of a file (default SALT's), validated; ``ClaimsError`` names file and key."""
    return load_file(path).claims


_DEFAULT = load_file()
CLAIMS: tuple[Claim, ...] = _DEFAULT.claims
REFERENCES: tuple[Reference, ...] = _DEFAULT.references


def get_claim(claim_id: str, claims: tuple[Claim, ...] = CLAIMS) -> Claim:
    """Look a claim up by id, with an error listing the known ids."""
    for claim in claims:
        if claim.id == claim_id:
            return claim
    raise KeyError(f"unknown claim {claim_id!r}; known: {[c.id for c in claims]}")


def property_claims(claims: tuple[Claim, ...] = CLAIMS) -> tuple[Claim, ...]:
    """Claims decided by property checks (their outcomes come from properties.json)."""
    return tuple(c for c in claims if not c.is_statistical)


def statistical_claims(claims: tuple[Claim, ...] = CLAIMS) -> tuple[Claim, ...]:
    """Claims decided from metrics files by the verdict rules."""
    return tuple(c for c in claims if c.is_statistical)
