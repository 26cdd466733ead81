"""``python -m claims check-table TABLE``: checks of a published accuracy table on its own.

The table (CSV, markdown pipe table or LaTeX ``tabular``) has one row per system and one column per
language, plus an optional average column. Checks, one finding per line with its cell:

- granularity (GRIM): an accuracy reported to d decimals must equal k/n, within half a unit of
  its last digit, for some integer k and the stated n; otherwise the known set sizes that fit it
  are named (e.g. XNLI's dev set, 2,490) and, when one fits every cell, the table is flagged;
- averages: recomputed from the row's cells within the table's own rounding (tolerance = the
  mean of the cells' half units plus the average's own half unit), also tried without English;
- cells below chance (1 / number of labels), an error when the whole binomial interval is below;
- languages missing against the claim (error) or the task (warning), unknown languages;
- a column order that looks shifted: zero-shot transfer from English peaks on English, so a row
  whose English column is not its best while the column right after English is, is flagged;
- the 95% binomial interval (Clopper-Pearson, ``scipy.stats.binomtest``) of each cell, and a
  Wilson interval of the average pooled over its items (translations are correlated, so the true
  interval is wider).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import binomtest

from salt.tasks import TASKS

from .importers.common import KNOWN_SIZES

AVERAGE_NAMES = ("avg", "avg.", "average", "mean", "ave", "ave.")
LEVELS = ("error", "warning", "info")
MISSING = ("", "-", "–", "—", "n/a", "na")
CONFIDENCE = 0.95
_EPS = 1e-9


class TableError(ValueError):
    """The table cannot be read; the message names the file, line and cell."""


@dataclass(frozen=True)
class Cell:
    row: str
    column: str
    text: str  # as printed in the table
    value: float | None  # percentage points; None when the cell is empty
    decimals: int  # decimals in percentage points

    @property
    def half_unit(self) -> float:
        return 0.5 * 10.0 ** -self.decimals


@dataclass(frozen=True)
class Table:
    source: str
    columns: tuple[str, ...]  # normalised: language codes and "avg"
    rows: tuple[tuple[str, tuple[Cell, ...]], ...]
    scale: str  # percent | fraction (as printed)
    notes: tuple[str, ...] = ()

    def languages(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c != "avg")


@dataclass(frozen=True)
class Finding:
    level: str  # error | warning | info
    check: str
    message: str
    row: str | None = None
    column: str | None = None
    value: str | None = None

    def line(self) -> str:
        cell = f" [{self.row} | {self.column} | {self.value}]" if self.row is not None else ""
        return f"{self.level.upper()} {self.check}{cell}: {self.message}"


# ---------------------------------------------------------------- parsing

def _latex_rows(text: str, where: str) -> list[tuple[int, list[str]]]:
    m = re.search(r"\\begin\{tabular\*?\}(?:\{[^{}]*\})?\{(?:[^{}]|\{[^{}]*\})*\}(.*?)"
                  r"\\end\{tabular\*?\}", text, re.S)
    if m is None:
        raise TableError(f"{where}: no \\begin{{tabular}}...\\end{{tabular}}")
    body = m.group(1)
    start = text[:m.start(1)].count("\n") + 1
    body = re.sub(r"(?<!\\)%[^\n]*", "", body)
    rows = []
    offset = 0
    for chunk in re.split(r"\\\\", body):
        lines_in = chunk.count("\n")
        chunk = re.sub(r"\\(hline|toprule|midrule|bottomrule)\b|\\c(?:mid)?rule(\([^)]*\))?\{[^}]*\}",
                       "", chunk)
        line = start + offset + chunk[:len(chunk) - len(chunk.lstrip())].count("\n")
        offset += lines_in
        chunk = chunk.strip()
        if not chunk:
            continue
        cells = [_clean_latex(c) for c in re.split(r"(?<!\\)&", chunk)]
        rows.append((line, cells))
    return rows


def _clean_latex(cell: str) -> str:
    cell = re.sub(r"~?\\cite[a-z]*\{[^{}]*\}", "", cell)
    cell = re.sub(r"\\multicolumn\{[^}]*\}\{[^}]*\}\{([^{}]*)\}", r"\1", cell)
    for _ in range(3):
        cell = re.sub(r"\\[A-Za-z]+\{([^{}]*)\}", r"\1", cell)
    return cell.replace("$", "").replace("\\%", "").replace("~", " ").strip()


def _markdown_rows(text: str) -> list[tuple[int, list[str]]]:
    rows = []
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
            continue
        rows.append((i, [c.replace("**", "").replace("__", "").strip("*_ ") for c in cells]))
    return rows


def _column(name: str) -> str:
    low = name.strip().lower()
    return "avg" if low in AVERAGE_NAMES else low


def _is_header(cells: Sequence[str]) -> bool:
    known = {lang for spec in TASKS.values() for lang in spec.languages}
    return sum(_column(c) in known for c in cells[1:]) >= 2


def read_table(path: Path) -> Table:
    """Parse a CSV, markdown or LaTeX table into cells in percentage points."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TableError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise TableError(f"{path}: not valid UTF-8 ({err})") from None
    if "\\begin{tabular" in text:
        raw = _latex_rows(text, str(path))
    elif any(line.lstrip().startswith("|") for line in text.splitlines()):
        raw = _markdown_rows(text)
    else:
        raw = [(i, [c.strip() for c in row])
               for i, row in enumerate(csv.reader(text.splitlines()), start=1) if row]
    heads = [k for k, (_, cells) in enumerate(raw) if _is_header(cells)]
    if not heads:
        raise TableError(f"{path}: no header row naming at least two language columns")
    hline, header = raw[heads[0]]
    notes = [f"line {ln} before the header not read: {' | '.join(c)}" for ln, c in raw[:heads[0]]]
    names = [_column(c) for c in header[1:]]
    keep = [i for i, c in enumerate(names) if c == "avg" or re.fullmatch(r"[a-z]{2}", c)]
    notes += [f"column {header[i + 1]!r} is neither a language code nor an average: not checked"
              for i in range(len(names)) if i not in keep]
    columns = [names[i] for i in keep]
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise TableError(f"{path}:{hline}: duplicated columns {dup}")
    parsed: list[tuple[str, list[tuple[str, str]]]] = []
    for ln, cells in raw[heads[0] + 1:]:
        if len(cells) != len(header):
            raise TableError(f"{path}:{ln}: {len(cells)} cells but the header has {len(header)}")
        parsed.append((cells[0] or f"row {ln}", [(names[i], cells[i + 1].strip()) for i in keep]))
        for col, txt in parsed[-1][1]:
            if txt.lower() not in MISSING and _number(txt) is None:
                raise TableError(f"{path}:{ln}: column {col}: {txt!r} is not a number")
    if not parsed:
        raise TableError(f"{path}: the table has a header but no rows")
    values = [_number(t) for _, cells in parsed for _, t in cells if t.lower() not in MISSING]
    scale = "percent" if any(v is not None and v > 1 for v in values) else "fraction"
    rows = []
    for label, cells in parsed:
        out = []
        for col, txt in cells:
            v = _number(txt) if txt.lower() not in MISSING else None
            d = _decimals(txt) - (2 if scale == "fraction" else 0)
            out.append(Cell(label, col, txt, None if v is None else
                            (v if scale == "percent" else 100 * v), d))
        rows.append((label, tuple(out)))
    return Table(str(path), tuple(columns), tuple(rows), scale, tuple(notes))


def _number(text: str) -> float | None:
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(?:%|(?:±|\+-|\\pm)\s*[0-9.]+)?\s*", text)
    return float(m.group(1)) if m else None


def _decimals(text: str) -> int:
    m = re.match(r"\s*[0-9]+(?:\.([0-9]+))?", text)
    return len(m.group(1)) if m and m.group(1) else 0


# ---------------------------------------------------------------- checks

def infer_task(table: Table) -> str:
    """The one task whose languages include every column; else the one sharing the most."""
    langs = set(table.languages())
    fits = [t for t, spec in TASKS.items() if langs <= set(spec.languages)]
    if not fits:
        overlap = {t: len(langs & set(spec.languages)) for t, spec in TASKS.items()}
        best = max(overlap.values())
        fits = [t for t, k in overlap.items() if k == best and k > 0]
    if len(fits) != 1:
        raise TableError(f"{table.source}: cannot tell the task from columns "
                         f"{list(table.languages())} (fits {fits}); pass --task")
    return fits[0]


def fits(value: float, half: float, n: int) -> bool:
    """Whether some k/n (in points) lies within ``half`` of ``value`` (GRIM)."""
    lo = math.ceil((value - half) * n / 100 - _EPS)
    hi = math.floor((value + half) * n / 100 + _EPS)
    return max(lo, 0) <= min(hi, n)


def interval(k: int, n: int, method: str = "exact") -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method=method)
    return 100 * ci.low, 100 * ci.high


def check_table(table: Table, task: str, n: int, n_from: str,
                claim_languages: Sequence[str] | None = None,
                claim_id: str | None = None) -> list[Finding]:
    """Every finding for ``table`` read as ``task`` accuracies on ``n`` items per language."""
    spec = TASKS[task]
    out = [Finding("info", "input", f"{table.source}: {len(table.rows)} rows, columns "
                   f"{list(table.columns)}, printed as {table.scale}; {task}, n = {n} per "
                   f"language ({n_from})")]
    out += [Finding("info", "input", note) for note in table.notes]
    langs = table.languages()
    unknown = [c for c in langs if c not in spec.languages]
    out += [Finding("error", "languages", f"column {c!r} is not a {task} language "
                    f"{list(spec.languages)}") for c in unknown]
    want = tuple(claim_languages) if claim_languages else spec.languages
    missing = [lang for lang in want if lang not in langs]
    if missing:
        against = f"claim {claim_id}" if claim_languages else f"the task {task}"
        out.append(Finding("error" if claim_languages else "warning", "languages",
                           f"languages {missing} of {against} are missing from the table"))
    out += _granularity(table, task, n)
    for label, cells in table.rows:
        by_col = {c.column: c for c in cells}
        for c in cells:
            if c.value is None:
                out.append(Finding("warning", "missing", "empty cell", label, c.column, c.text))
        out += _average(by_col, spec.source_language, label)
        out += _chance(cells, n, len(spec.labels))
        out += _shifted(table.columns, by_col, spec.source_language, label)
        out += _intervals(cells, n)
    return out


def _granularity(table: Table, task: str, n: int) -> list[Finding]:
    cells = [c for _, row in table.rows for c in row if c.value is not None]
    by_size: dict[int, list[str]] = {}
    for split, size in KNOWN_SIZES[task].items():
        by_size.setdefault(size, []).append(split)
    known = sorted((size, f"{task} {'/'.join(splits)}") for size, splits in by_size.items())
    testable = [c for c in cells if 100.0 / n > 2 * c.half_unit]
    out = []
    if len(testable) < len(cells):
        out.append(Finding("info", "granularity",
                           f"{len(cells) - len(testable)} cell(s) have too few decimals to test "
                           f"n = {n} (steps of {100 / n:.3g} pt are finer than their rounding)"))
    bad = [c for c in testable if not fits(c.value, c.half_unit, n)]
    for c in bad:
        alt = [f"{size} ({name})" for size, name in known
               if size != n and fits(c.value, c.half_unit, size)]
        out.append(Finding("error", "granularity",
                           f"{c.text} is not k/{n} for any k at {c.decimals} decimals"
                           + (f"; fits n = {', '.join(alt)}" if alt else
                              "; no known set size fits"), c.row, c.column, c.text))
    if bad:
        for size, name in known:
            if size != n and all(fits(c.value, c.half_unit, size) for c in testable):
                out.append(Finding("error", "granularity",
                                   f"all {len(testable)} testable cells fit n = {size} ({name}) "
                                   f"but {len(bad)} do not fit the stated n = {n}: numbers of "
                                   f"another split or subset?"))
    return out


def _average(by_col: dict[str, Cell], source: str, label: str) -> list[Finding]:
    avg = by_col.get("avg")
    if avg is None or avg.value is None:
        return []
    cells = [c for col, c in by_col.items() if col != "avg" and c.value is not None]
    if not cells:
        return []
    out = []
    if len(cells) < len(by_col) - 1:
        out.append(Finding("warning", "average", f"average over {len(cells)} of "
                           f"{len(by_col) - 1} columns (empty cells)", label, "avg", avg.text))

    def check(group: list[Cell]) -> tuple[bool, float, float]:
        mean = sum(c.value for c in group) / len(group)
        tol = sum(c.half_unit for c in group) / len(group) + avg.half_unit + _EPS
        return abs(mean - avg.value) <= tol, mean, tol

    ok, mean, tol = check(cells)
    if ok:
        return out
    others = [c for c in cells if c.column != source]
    if len(others) < len(cells):
        ok2, mean2, _ = check(others)
        if ok2:
            out.append(Finding("warning", "average",
                               f"the average is the mean without {source} ({mean2:.3f}), not of "
                               f"all {len(cells)} columns ({mean:.3f}): label it so",
                               label, "avg", avg.text))
            return out
    out.append(Finding("error", "average",
                       f"mean of the {len(cells)} cells is {mean:.3f}, differing from "
                       f"{avg.text} by {abs(mean - avg.value):.3f} > {tol:.3f} (the rounding "
                       "of the cells and of the average)", label, "avg", avg.text))
    return out


def _chance(cells: Sequence[Cell], n: int, num_labels: int) -> list[Finding]:
    chance = 100.0 / num_labels
    out = []
    for c in cells:
        if c.value is None or c.value >= chance:
            continue
        low, high = interval(round(c.value * n / 100), n)
        sure = high < chance
        out.append(Finding("error" if sure else "warning", "chance",
                           f"below chance ({chance:.2f} for {num_labels} labels)"
                           + (f"; its whole interval [{low:.2f}, {high:.2f}] is below" if sure
                              else f"; within sampling error [{low:.2f}, {high:.2f}]"),
                           c.row, c.column, c.text))
    return out


def _shifted(columns: Sequence[str], by_col: dict[str, Cell], source: str,
             label: str) -> list[Finding]:
    langs = [c for c in columns if c != "avg" and by_col[c].value is not None]
    if source not in langs or langs.index(source) == len(langs) - 1:
        return []
    best = max(by_col[c].value for c in langs)
    nxt = by_col[langs[langs.index(source) + 1]]
    if by_col[source].value < best and nxt.value == best:
        return [Finding("warning", "column order",
                        f"{source} ({by_col[source].text}) is not the best column but the next "
                        f"one, {nxt.column} ({nxt.text}), is: columns shifted by one?",
                        label, nxt.column, nxt.text)]
    return []


def _intervals(cells: Sequence[Cell], n: int) -> list[Finding]:
    out = []
    langs = [c for c in cells if c.column != "avg" and c.value is not None]
    for c in langs:
        low, high = interval(round(c.value * n / 100), n)
        out.append(Finding("info", "interval", f"{CONFIDENCE:.0%} binomial interval "
                           f"[{low:.2f}, {high:.2f}] (k = {round(c.value * n / 100)}, n = {n})",
                           c.row, c.column, c.text))
    avg = next((c for c in cells if c.column == "avg" and c.value is not None), None)
    if avg is not None and langs:
        total = n * len(langs)
        low, high = interval(round(avg.value * total / 100), total, "wilson")
        out.append(Finding("info", "interval",
                           f"{CONFIDENCE:.0%} Wilson interval [{low:.2f}, {high:.2f}] pooled over "
                           f"{len(langs)} x {n} items (translations are correlated: wider in truth)",
                           avg.row, avg.column, avg.text))
    return out


def decide_n(task: str, split: str | None, n: int | None) -> tuple[int, str]:
    """Items per language: ``--n``, else the known size of ``--split``, else the test size."""
    if n is not None:
        return n, "given with --n"
    if split is not None:
        return KNOWN_SIZES[task][split], f"{task} {split} size (--split {split})"
    return KNOWN_SIZES[task]["test"], f"{task} test size assumed (no --split or --n)"
