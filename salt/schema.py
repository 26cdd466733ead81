"""The metrics file (schema v2): one per task x arm x seed, written by the evaluation stage or
by an importer of somebody else's numbers.

Typed with pydantic so every key, its type and its meaning sit in one place; ``validate_metrics``
checks a loaded object against it and raises ``SchemaError`` naming the file and the key path.
Accuracies are fractions in [0, 1]; reports convert to percentage points.

v2 against v1: ``system`` is a free arm name; ``predictions`` may be ``null`` (summary counts only:
an audit can report such a file but never call it reproduced); ``provenance`` adds ``split``,
``origin`` and ``runtime``; ``extra`` holds typed blocks. For imported files every provenance value
the source does not state is ``null`` (unknown), never invented. v1 files (the pipeline's earlier
output) are upgraded on load, with the fields v1 did not record set to ``null``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

SCHEMA_VERSION = 2
DEFAULT_ARMS = ("baseline", "salt")  # the arms SALT's own pipeline writes
SYSTEMS = DEFAULT_ARMS  # v1 name, kept for readers that only know SALT's arms
ARM_PATTERN = r"^[A-Za-z0-9_.+-]+$"
V1_FORMAT = "salt-metrics-v1"  # origin.format of a v1 file upgraded on load

RUN_SPECIFIC = (
    "provenance.wall_time_s",
    "provenance.created_utc",
    "provenance.device",
    "extra.train.wall_time_s",
    "extra.mlm_head.wall_time_s",
    "extra.codeswitch.wall_time_s",
)
"""Dotted key paths that legitimately differ between two runs of the same profile and seed
(times and the machine's description); a reproduction check compares everything else."""

Metrics = dict[str, Any]
"""A validated metrics object: plain JSON data in the shape of ``MetricsFile``."""


class SchemaError(ValueError):
    """A metrics file does not match the schema; the message names the file and key path."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Open(BaseModel):
    """A diagnostics block: the named keys are typed, further keys are kept as written."""

    model_config = ConfigDict(extra="allow", frozen=True)


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[StrictInt, Field(ge=0)]


class LanguageResult(_Model):
    correct: Count | None  # items predicted correctly (None: unknown, imported accuracy only)
    total: Annotated[StrictInt, Field(gt=0)] | None  # items evaluated (None: unknown, imports)
    accuracy: Fraction  # correct / total

    @model_validator(mode="after")
    def _consistent(self) -> LanguageResult:
        if self.correct is None:
            return self
        if self.total is None:
            raise ValueError(f"correct={self.correct} given without total")
        if self.correct > self.total:
            raise ValueError(f"correct={self.correct} exceeds total={self.total}")
        if not math.isclose(self.accuracy, self.correct / self.total, abs_tol=1e-9):
            raise ValueError(f"accuracy {self.accuracy} != correct/total "
                             f"{self.correct}/{self.total}")
        return self


class Averages(_Model):
    all: Fraction  # macro average of per-language accuracy over every evaluated language
    without_en: Fraction | None  # over the non-English languages (None if there are none)
    under_resourced: Fraction | None  # over the task's under-resourced group (None if empty)


class Predictions(_Model):
    uids: list[str]  # "{task}/{split}-{lang}:{line}"; line numbers are shared by translations
    labels: list[StrictInt]  # gold label ids
    predicted: list[StrictInt]  # predicted label ids

    @model_validator(mode="after")
    def _same_length(self) -> Predictions:
        n = len(self.uids)
        if len(self.labels) != n or len(self.predicted) != n:
            raise ValueError(f"uids/labels/predicted lengths differ: {n}, {len(self.labels)}, "
                             f"{len(self.predicted)}")
        return self


class Origin(_Model):
    kind: Literal["pipeline", "import"]
    format: str | None  # importer format (None for the pipeline)
    source: str  # relative path or file name of what was read or written, never absolute
    sha256: str | None  # checksum of the source file where there is one

    @model_validator(mode="after")
    def _relative(self) -> Origin:
        s = self.source.replace("\\", "/")
        if s.startswith("/") or (len(s) > 1 and s[1] == ":"):
            raise ValueError(f"source {self.source!r} is an absolute path (use a relative path "
                             "or a file name)")
        return self


class RuntimeInfo(_Open):
    device: str  # e.g. "cpu", "cuda:0"
    weights_dtype: str  # e.g. "float32"
    autocast: str | None  # "no" | "bf16" | "fp16"


class Provenance(_Model):
    profile: str | None  # smoke | proxy | paper | user-defined; None: unknown (imports)
    model: str | None  # model source spec, e.g. "e5-small", "hf:bert-base-multilingual-cased"
    sizes: dict[str, int | None] | None  # train / dev / test rows per language actually used
    seeds: dict[str, int | None] | None  # seed of this run and of every seeded step that fed it
    git_commit: str | None  # commit of the code, "+dirty" when modified
    params_hash: str | None  # salt.provenance.params_hash(params)
    params: dict[str, Any] | None  # the resolved parameters the hash covers
    versions: dict[str, str] | None  # python, torch, transformers, ...
    device: str | None  # human-readable machine description
    data_source: Annotated[str, Field(pattern=r"^(local|hub):[^/\\].*$")] | None
    data_revision: str | None  # manifest checksum of the local files or the hub commit sha
    wall_time_s: Annotated[float, Field(ge=0)] | None
    created_utc: str | None  # ISO 8601 time the file was written
    split: Literal["test", "dev"] | None  # the split the items come from
    origin: Origin
    runtime: RuntimeInfo | None  # salt.runtime.observed(...) of the evaluated model

    @model_validator(mode="after")
    def _pipeline_complete(self) -> Provenance:
        """The pipeline knows everything it records; only imports may leave values unknown."""
        if self.origin.kind == "pipeline":
            known = ["profile", "model", "sizes", "seeds", "git_commit", "params_hash",
                     "params", "versions", "data_source", "data_revision", "split"]
            if self.origin.format == V1_FORMAT:  # v1 did not record the split
                known.remove("split")
            unknown = [k for k in known if getattr(self, k) is None]
            if unknown:
                raise ValueError(f"origin.kind is 'pipeline' but {unknown} are null (only "
                                 "imported files may leave provenance unknown)")
        return self


class Budget(_Model):
    stage: str
    kind: Literal["sentences", "steps", "items", "seconds"]
    limit: float | None
    used: float | None
    cut_short: bool


class TrainBudget(_Model):
    limit: float | None
    used: float | None
    cut_short: bool


class TrainExtra(_Open):
    steps: StrictInt | None = None
    selected: Any = None
    wall_time_s: float | None = None
    budget: TrainBudget | None = None
    dev_history: list[Any] | None = None


class Extra(_Model):
    train: TrainExtra | None = None
    mlm_head: _Open | None = None
    fill_mask: _Open | None = None
    codeswitch: _Open | None = None  # salt.codeswitch.codeswitch_stats
    budgets: list[Budget] | None = None
    imported: _Open | None = None  # the importer's decisions (claims.importers): split_from,
    # totals_from, model_from, profile_from, missing_languages, reported, notes


class MetricsFile(_Model):
    schema_version: Literal[2]
    task: str  # xnli | pawsx (checked against salt.tasks by the audit)
    system: Annotated[str, Field(pattern=ARM_PATTERN)]  # free arm name
    seed: StrictInt | None  # training seed (None: unknown, imports)
    languages: Annotated[dict[str, LanguageResult], Field(min_length=1)]
    averages: Averages
    predictions: dict[str, Predictions] | None  # None: summary counts only (unverifiable)
    provenance: Provenance
    extra: Extra = Field(default_factory=Extra)

    @model_validator(mode="after")
    def _predictions_match(self) -> MetricsFile:
        for lang, pred in (self.predictions or {}).items():
            if lang not in self.languages:
                raise ValueError(f"predictions.{lang} has no entry in languages")
            total = self.languages[lang].total
            if total is None or len(pred.uids) != total:
                raise ValueError(f"predictions.{lang} has {len(pred.uids)} items but "
                                 f"languages.{lang}.total is {total}")
        return self


def upgrade_v1(obj: dict[str, Any], where: str = "<metrics>") -> dict[str, Any]:
    """A v1 metrics object in v2 form: what v1 did not record (split, runtime) is ``null``;
    the origin is the pipeline (v1 had no importers) in format ``V1_FORMAT``, ``source`` the
    file's name; a local ``data_source`` becomes the data id (v1 wrote a machine path there)."""
    out = dict(obj)
    prov = dict(out.get("provenance") or {})
    prov.setdefault("split", None)
    prov.setdefault("runtime", None)
    prov.setdefault("origin", {"kind": "pipeline", "format": V1_FORMAT,
                               "source": Path(where).name, "sha256": None})
    source = prov.get("data_source")
    if isinstance(source, str) and source.startswith("local:") and prov.get("data_revision"):
        prov["data_source"] = f"local:{prov['data_revision']}"  # the data id, not a machine path
    out["provenance"] = prov
    out["schema_version"] = SCHEMA_VERSION
    return out


def _path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
    return ".".join(parts) or "<top level>"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_metrics(obj: Any, where: str = "<metrics>") -> MetricsFile:
    """Validate and return the typed model; v1 objects are upgraded first."""
    if not isinstance(obj, dict):
        raise SchemaError(f"{where}: top level must be a JSON object")
    version = obj.get("schema_version")
    if version == 1:
        obj = upgrade_v1(obj, where)
    elif version != SCHEMA_VERSION:
        raise SchemaError(f"{where}: key 'schema_version': {version!r} is not supported "
                          f"(expected {SCHEMA_VERSION}, or 1 to upgrade)")
    try:
        return MetricsFile.model_validate(obj)
    except ValidationError as err:
        problems = [f"missing key '{_path(e['loc'])}'" if e["type"] == "missing"
                    else f"key '{_path(e['loc'])}': {e['msg']} (got {_short(e.get('input'))})"
                    for e in err.errors()]
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise SchemaError(f"{where}: " + "; ".join(problems[:3]) + more) from None


def validate_metrics(obj: Any, where: str = "<metrics>") -> Metrics:
    """Check a loaded metrics object; return it as plain, validated JSON data (v2)."""
    return parse_metrics(obj, where).model_dump(mode="json")


def load_metrics(path: str | Path) -> Metrics:
    """Read and validate one metrics file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(f"{path}: file not found") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: not valid JSON ({err})") from None
    return validate_metrics(obj, str(path))


def run_specific_removed(obj: Metrics) -> Metrics:
    """A copy of a metrics object without the ``RUN_SPECIFIC`` keys (for reproduction checks)."""
    out = json.loads(json.dumps(obj))
    for dotted in RUN_SPECIFIC:
        *parents, leaf = dotted.split(".")
        node = out
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out
