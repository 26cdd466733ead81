"""Parameters: ``params.yaml`` holds one group per pipeline stage, each keyed by profile.

``profile`` (smoke | proxy | paper) picks the entry of every group; ``seeds`` and ``tasks`` are
top level so DVC can fan stages out over them. Read with ``yaml.safe_load``; every missing or
unknown key is reported with its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from salt.provenance import params_hash
from salt.tasks import TASKS

GROUPS = ("data", "model", "vocab", "mlm", "codeswitch", "train", "evaluate")


class ConfigError(ValueError):
    """A bad parameter; the message names the file and key."""


@dataclass(frozen=True)
class Params:
    """The resolved parameters of one profile."""

    path: Path
    profile: str
    seeds: tuple[int, ...]
    tasks: tuple[str, ...]
    groups: dict[str, dict[str, Any]]

    def group(self, name: str) -> dict[str, Any]:
        return dict(self.groups[name])

    def shared(self) -> dict[str, Any]:
        """What both systems and all seeds share: the basis of ``params_hash``."""
        return {"profile": self.profile, "tasks": list(self.tasks), **self.groups}

    @property
    def hash(self) -> str:
        return params_hash(self.shared())


def load_params(path: str | Path = "params.yaml", profile: str | None = None) -> Params:
    """Read ``params.yaml`` and resolve one profile (default: its ``profile`` key)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: parameters file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    for key in ("profile", "seeds", "tasks", *GROUPS):
        if key not in raw:
            raise ConfigError(f"{path}: missing key {key!r}")
    name = profile or raw["profile"]
    groups: dict[str, dict[str, Any]] = {}
    for g in GROUPS:
        entry = raw[g]
        if not isinstance(entry, dict) or name not in entry:
            known = sorted(entry) if isinstance(entry, dict) else []
            raise ConfigError(f"{path}: key '{g}.{name}' missing (profile {name!r}; "
                              f"profiles defined for {g}: {known})")
        groups[g] = dict(entry[name] or {})
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{path}: key 'seeds' must be a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{path}: key 'seeds' has duplicates: {seeds}")
    min_seeds = groups["train"].get("min_seeds", 1)
    if len(seeds) < min_seeds:
        raise ConfigError(f"{path}: profile {name!r} needs at least {min_seeds} seeds per arm, "
                          f"'seeds' has {len(seeds)} (e.g. -S 'seeds=[0,1,2,3,4]')")
    tasks = raw["tasks"]
    for t in tasks:
        if t not in TASKS:
            raise ConfigError(f"{path}: key 'tasks' has unknown task {t!r}; known: {sorted(TASKS)}")
    return Params(path, name, tuple(seeds), tuple(tasks), groups)


def take(group: dict[str, Any], where: str, cls):
    """Build ``cls(**group)``, naming the offending key on unknown or missing entries."""
    try:
        return cls(**group)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from None
