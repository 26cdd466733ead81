"""A plain CSV of accuracies: columns ``system``, ``seed``, then one column per language
(optional ``model`` and ``split`` columns; an ``avg``/``average`` column is read but not imported:
averages are recomputed, and ``check-table`` checks a published one).

Percent or fraction is detected (any value above 1 means percent) unless ``--scale`` says, and the
decision is recorded. Each row becomes one metrics file (task x system x seed).
"""

from __future__ import annotations

import csv
from pathlib import Path

from salt.tasks import TASKS

from .common import Draft, ImportOptions, LanguageNumbers, SourceError, check_system, get_spec

AVERAGE_COLUMNS = ("avg", "avg.", "average", "mean")
OPTIONAL_COLUMNS = ("model", "split")


def decimals_of(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def infer_task(langs: list[str], where: str) -> str:
    fits = [t for t, spec in TASKS.items() if set(langs) <= set(spec.languages)]
    if len(fits) != 1:
        raise SourceError(f"{where}: the language columns {langs} fit tasks {fits}; pass --task")
    return fits[0]


def read(src: Path, opts: ImportOptions) -> list[tuple[Draft, list[Path]]]:
    try:
        rows = list(csv.reader(src.read_text(encoding="utf-8").splitlines()))
    except FileNotFoundError:
        raise SourceError(f"{src}: file not found") from None
    except UnicodeDecodeError as err:
        raise SourceError(f"{src}: not valid UTF-8 ({err})") from None
    if len(rows) < 2:
        raise SourceError(f"{src}: needs a header and at least one row")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    if lower[:2] != ["system", "seed"]:
        raise SourceError(f"{src}:1: the first columns must be 'system,seed', got {header[:2]}")
    langs = [h for h in lower[2:] if h not in AVERAGE_COLUMNS + OPTIONAL_COLUMNS]
    task = opts.task or infer_task(langs, f"{src}:1")
    spec = get_spec(task, f"{src}:1")
    bad = [h for h in langs if h not in spec.languages]
    if bad:
        raise SourceError(f"{src}:1: columns {bad} are not {task} languages, 'model', 'split' or "
                          "an average")
    values: list[tuple[int, dict[str, str]]] = []
    for i, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise SourceError(f"{src}:{i}: {len(row)} cells but the header has {len(header)}")
        values.append((i, dict(zip(lower, (c.strip() for c in row), strict=True))))
    numbers: dict[tuple[int, str], float] = {}
    for i, row in values:
        for lang in langs:
            try:
                numbers[(i, lang)] = float(row[lang])
            except ValueError:
                raise SourceError(f"{src}:{i}: column {lang}: {row[lang]!r} is not a number") \
                    from None
    high = [(i, lang, v) for (i, lang), v in numbers.items() if v > 1]
    scale = opts.scale or ("percent" if high else "fraction")
    how = "user: --scale" if opts.scale else (
        f"detected: {high[0][2]} (line {high[0][0]}, {high[0][1]}) is above 1" if high
        else "detected: every value is at most 1")
    if scale == "fraction" and high:
        raise SourceError(f"{src}:{high[0][0]}: column {high[0][1]}: {high[0][2]} is above 1 "
                          "but --scale fraction")
    out = []
    for i, row in values:
        where = f"{src}:{i}"
        seed = None
        if row["seed"]:
            try:
                seed = int(row["seed"])
            except ValueError:
                raise SourceError(f"{where}: seed {row['seed']!r} is not an integer") from None
        langs_here: dict[str, LanguageNumbers] = {}
        for lang in langs:
            v, text = numbers[(i, lang)], row[lang]
            frac = v / 100 if scale == "percent" else v
            if not 0 <= frac <= 1:
                raise SourceError(f"{where}: column {lang}: {text} is not an accuracy ({scale})")
            d = decimals_of(text) + (2 if scale == "percent" else 0)
            langs_here[lang] = LanguageNumbers(frac, decimals=d,
                                               reported=text + (" %" if scale == "percent" else ""))
        split = row.get("split") or None
        if split not in (None, "test", "dev"):
            raise SourceError(f"{where}: split {split!r} must be test or dev")
        draft = Draft(task, check_system(row["system"] or None, where), seed, langs_here,
                      split=split, split_from="column split" if split else None,
                      model=row.get("model") or None)
        draft.notes.append(f"scale {scale} ({how})")
        averaged = [h for h in lower if h in AVERAGE_COLUMNS]
        if averaged:
            draft.notes.append(f"column {averaged[0]} not imported (averages are recomputed; "
                               "'check-table' checks the published one)")
        out.append((draft, [src]))
    return out
