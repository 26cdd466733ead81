"""Parameters: ``params.yaml`` holds one group per pipeline stage, each keyed by profile.

``profile`` picks the entry of every group; ``seeds`` and ``tasks`` are top level so DVC can fan
stages out over them. Each group's schema is a pydantic model owned by the stage that reads it
(``salt.stages.<stage>.SETTINGS``), built from the method's own dataclass where there is one
(:func:`dataclass_schema`), so a field name is written once. Validation is strict: an unknown,
missing or wrongly typed key, or a value out of range, in any group of any profile is a
:class:`ConfigError` naming the file, ``group.profile.key``, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from salt.provenance import params_hash
from salt.tasks import TASKS

GROUPS = ("data", "model", "vocab", "mlm", "codeswitch", "train", "evaluate")
TOP_LEVEL = ("profile", "seeds", "tasks")
STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)

Schema = TypeVar("Schema", bound=BaseModel)


class ConfigError(ValueError):
    """A bad parameter; the message names the file and key."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``; 1.2 does not)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a SafeLoader
    except FileNotFoundError:
        raise ConfigError(f"{path}: parameters file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None


@dataclass(frozen=True)
class Params:
    """``params.yaml`` as read: the chosen profile, the top-level lists and every group's
    entries for every profile (validated by the stages' schemas, see :func:`check_all`)."""

    path: Path
    profile: str
    seeds: tuple[int, ...]
    tasks: tuple[str, ...]
    groups: Mapping[str, Mapping[str, Any]]  # group -> profile -> entry

    @property
    def profiles(self) -> tuple[str, ...]:
        return tuple(sorted({p for g in self.groups.values() for p in g}))

    def entry(self, group: str, profile: str | None = None) -> dict[str, Any]:
        """The raw entry ``group.profile`` (a copy)."""
        return dict(self.groups[group][profile or self.profile] or {})

    def settings(self, group: str, schema: type[Schema], profile: str | None = None) -> Schema:
        """``group.profile`` validated against ``schema``."""
        name = profile or self.profile
        return validate(schema, self.entry(group, name), self.path, f"{group}.{name}")

    def shared(self) -> dict[str, Any]:
        """What both systems and all seeds share (every group of this profile): the basis of
        ``params_hash`` and what provenance records. Every field that changes results is a
        required key, so this holds all of them."""
        return {"profile": self.profile, "tasks": list(self.tasks),
                **{g: self.entry(g) for g in GROUPS}}

    @property
    def hash(self) -> str:
        return params_hash(self.shared())


def load_params(path: str | Path = "params.yaml", profile: str | None = None) -> Params:
    """Read ``params.yaml`` and check its shape; ``profile`` overrides its ``profile`` key."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    allowed = (*TOP_LEVEL, *GROUPS)
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{path}: unknown top-level key {key!r}; allowed: {list(allowed)}")
    for key in allowed:
        if key not in raw:
            raise ConfigError(f"{path}: missing key {key!r}")
    name = profile or raw["profile"]
    if not isinstance(name, str):
        raise ConfigError(f"{path}: key 'profile' must be a string, got {name!r}")
    for g in GROUPS:
        entry = raw[g]
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: key {g!r} must map profile names to settings")
        if name not in entry:
            raise ConfigError(f"{path}: key '{g}.{name}' missing (profile {name!r}; "
                              f"profiles defined for {g}: {sorted(entry)})")
        for prof, settings in entry.items():
            if not isinstance(settings, dict):
                raise ConfigError(f"{path}: key '{g}.{prof}' must be a mapping, got {settings!r}")
    seeds = raw["seeds"]
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ConfigError(f"{path}: key 'seeds' must be a non-empty list of integers, "
                          f"got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{path}: key 'seeds' has duplicates: {seeds}")
    tasks = raw["tasks"]
    if not isinstance(tasks, list) or not tasks:
        raise ConfigError(f"{path}: key 'tasks' must be a non-empty list, got {tasks!r}")
    for t in tasks:
        if t not in TASKS:
            raise ConfigError(f"{path}: key 'tasks' has unknown task {t!r}; known: {sorted(TASKS)}")
    return Params(path, name, tuple(seeds), tuple(tasks), {g: raw[g] for g in GROUPS})


# ----------------------------------------------------------------------------- validation
def _allowed(schema: type[BaseModel], loc: tuple, keys: bool = False) -> str:
    """What the key at ``loc`` accepts, in words (``keys``: the keys of the mapping there)."""
    model: Any = schema
    meta: list[Any] = []
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return "?"
        model, meta = fields[part].annotation, list(fields[part].metadata)
    if keys:
        fields = getattr(model, "model_fields", None)
        return f"keys {sorted(fields)}" if fields else "?"
    return " ".join([_type_name(model), *map(str, meta)])


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"a mapping with keys {sorted(tp.model_fields)}"
    return getattr(tp, "__name__", None) if isinstance(tp, type) else str(tp).replace(
        "typing.", "")


def validate(schema: type[Schema], data: Any, path: Path | str, where: str) -> Schema:
    """``schema`` validated strictly from ``data`` (JSON semantics: a list is a tuple, an int
    is a float, nothing else converts); the first problem becomes a ``ConfigError``."""
    try:
        return schema.model_validate_json(json.dumps(data, default=str))
    except ValidationError as err:
        messages = []
        for e in err.errors():
            loc = tuple(e["loc"])
            key = ".".join([where, *map(str, loc)])
            parent = loc[:-1]
            if e["type"] == "extra_forbidden":
                what = (f"unknown key (value {e['input']!r}); allowed: "
                        f"{_allowed(schema, parent, keys=True)}")
            elif e["type"] == "missing":
                what = f"missing key; required: {_allowed(schema, loc)}"
            elif e["type"] == "value_error":
                what = f"{e['msg'].removeprefix('Value error, ')} (value {e['input']!r})"
            else:
                what = (f"value {e['input']!r} refused: {e['msg']}; "
                        f"allowed: {_allowed(schema, loc)}")
            messages.append(f"{path}: {key}: {what}")
        raise ConfigError("\n".join(messages)) from None


def dataclass_schema(cls: type, *, set_by_stage: tuple[str, ...] = (),
                     optional: tuple[str, ...] = (), limits: Mapping[str, Any] | None = None,
                     extra_fields: Mapping[str, Any] | None = None) -> type[BaseModel]:
    """A strict pydantic schema for the stdlib dataclass ``cls``: its fields, all required
    (no hidden defaults), except ``optional`` (keeping the dataclass default) and
    ``set_by_stage`` (left out: the stage fills them, e.g. the seed of a run). Nested dataclass
    fields become nested schemas. ``limits`` maps a field (``"a.b"`` inside nested ones) to
    ``annotated_types`` constraints; ``extra_fields`` adds stage-only keys."""
    limits = dict(limits or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for name in (*set_by_stage, *optional):
        if name not in names:
            raise TypeError(f"{cls.__name__} has no field {name!r}")
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in set_by_stage:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            sub = {k.split(".", 1)[1]: v for k, v in limits.items() if k.startswith(f.name + ".")}
            tp = dataclass_schema(tp, limits=sub)
        if f.name in limits:
            constraint = limits.pop(f.name)
            extra = constraint if isinstance(constraint, tuple) else (constraint,)
            tp = Annotated[(tp, *extra)]
        if f.name in optional:
            default = (f.default if f.default is not dataclasses.MISSING
                       else f.default_factory())  # type: ignore[misc]
            fields[f.name] = (tp, default)
        else:
            fields[f.name] = (tp, ...)
    for name, spec in (extra_fields or {}).items():
        fields[name] = spec
    unknown = [k for k in limits if "." not in k and k not in names]
    if unknown:
        raise TypeError(f"limits name no field of {cls.__name__}: {unknown}")
    return create_model(f"{cls.__name__}Params", __config__=STRICT, **fields)


def build(cls: type, settings: BaseModel, where: str, path: Path | str, **stage_values):
    """The dataclass ``cls`` from validated ``settings`` (fields of ``cls`` only) plus the
    values the stage sets; a ``ValueError`` from its own checks names ``where``."""
    names = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for name in names & set(type(settings).model_fields):
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            value = build(hints[name], value, f"{where}.{name}", path)
        values[name] = value
    try:
        obj = cls(**{**values, **stage_values})
        check = getattr(obj, "check", None)
        if callable(check):
            check()
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path}: {where}: {err}") from None
    return obj


def check_all(params: Params) -> None:
    """Validate every group of every profile against its stage's schema before any work.

    The schemas are found by name (``salt.stages.STAGES``) so this gate does not make every
    stage's code a dependency of every other: it decides whether a stage runs, never what it
    writes."""
    import importlib

    from salt.stages import STAGES

    for stage in STAGES:
        module = importlib.import_module(f"salt.stages.{stage}")
        for profile in sorted(params.groups[module.GROUP]):
            module.check(params, profile)
