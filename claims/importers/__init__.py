"""``python -m claims import FORMAT SRC -o DIR``: metrics files (schema v2) from numbers this
project did not produce. One importer per source format; each returns drafts that
``common.build_metrics`` turns into one metrics file per task x system x seed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import csvfile, hf, lmeval, xtreme
from .common import (
    KNOWN_SIZES,
    Draft,
    ImportOptions,
    SourceError,
    build_metrics,
    file_name,
    relative_source,
    sha256_of,
)
from .shape import check_shape

Reader = Callable[[Path, ImportOptions], list[tuple[Draft, list[Path]]]]
IMPORTERS: dict[str, Reader] = {"hf": hf.read, "lm-eval": lmeval.read, "xtreme": xtreme.read,
                                "csv": csvfile.read}

__all__ = ["IMPORTERS", "KNOWN_SIZES", "ImportOptions", "SourceError", "convert", "import_source",
           "validate"]


def validate(metrics: dict[str, Any], where: str) -> None:
    """Check with ``salt.schema.validate_metrics`` once it reads schema v2; until then with the
    shape check of interface 4 (``shape.check_shape``)."""
    from salt import schema

    if getattr(schema, "SCHEMA_VERSION", 1) >= 2:
        schema.validate_metrics(json.loads(json.dumps(metrics)), where)
    else:
        check_shape(metrics, where)


def convert(fmt: str, src: Path, opts: ImportOptions) -> list[dict[str, Any]]:
    """Metrics dicts for every task x system x seed in ``src`` (nothing written)."""
    if fmt not in IMPORTERS:
        raise SourceError(f"unknown format {fmt!r}; known: {sorted(IMPORTERS)}")
    out = []
    for draft, paths in IMPORTERS[fmt](src, opts):
        files = sorted(set(paths))
        origin = {"kind": "import", "format": fmt,
                  "source": relative_source(files[0] if len(files) == 1 else src),
                  "sha256": sha256_of(files)}
        metrics = build_metrics(draft, opts, origin, str(src))
        validate(metrics, f"{src} ({file_name(metrics)})")
        out.append(metrics)
    return out


def import_source(fmt: str, src: Path, out_dir: Path, opts: ImportOptions) -> list[Path]:
    """Convert and write; refuses two results with the same task x system x seed and a file in
    ``out_dir`` that already holds different numbers."""
    metrics = convert(fmt, src, opts)
    names: dict[str, dict[str, Any]] = {}
    for m in metrics:
        name = file_name(m)
        if name in names:
            raise SourceError(
                f"{src}: two results are {m['task']} / {m['system']} / seed {m['seed']} "
                f"({names[name]['provenance']['origin']['source']} and "
                f"{m['provenance']['origin']['source']}); pass --seed or --system per source")
        names[name] = m
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, m in names.items():
        path = out_dir / name
        text = json.dumps(m, indent=1, sort_keys=False) + "\n"
        if path.exists() and path.read_text(encoding="utf-8") != text:
            raise SourceError(f"{path}: already exists with other numbers; choose another -o "
                              "folder or remove it")
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
