"""check-table: each finding shown on a table that has it and absent from one that does not.

Tables are written here (CSV, markdown, LaTeX); cell values are generated from counts k/n so the
granularity cases are exact, not remembered numbers.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from scipy.stats import binomtest

from claims import registry
from claims.__main__ import main
from claims.tables import Finding, TableError, check_table, decide_n, fits, read_table
from salt.tasks import PAWSX, XNLI


def pct(k: int, n: int, d: int = 2) -> str:
    return f"{100 * k / n:.{d}f}"


def dev_only(count: int) -> list[str]:
    """Values k/2490 at 2 decimals that no k'/5010 reaches (dev numbers sold as test numbers)."""
    out = []
    for k in range(1700, 2400):
        v = pct(k, 2490)
        if not fits(float(v), 0.005, 5010):
            out.append(v)
        if len(out) == count:
            return out
    raise AssertionError("no such values")


def write(path: Path, header: list[str], rows: list[list[str]], kind: str = "csv") -> Path:
    if kind == "csv":
        text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    elif kind == "md":
        text = "Table 2: results\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header) \
            + "\n" + "".join("| " + " | ".join(r) + " |\n" for r in rows)
    else:
        body = " \\\\\n".join(" & ".join(r) for r in [header, *rows])
        text = ("\\begin{table}\\begin{tabular}{l" + "c" * (len(header) - 1) + "}\n\\toprule\n"
                + body.replace(" \\\\\n", " \\\\\n\\midrule\n", 1) + " \\\\\n\\bottomrule\n"
                "\\end{tabular}\\end{table}\n")
    path.write_text(text, encoding="utf-8")
    return path


def run(path: Path, task: str = "xnli", split: str | None = None, n: int | None = None,
        **kw) -> list[Finding]:
    size, how = decide_n(task, split, n)
    return check_table(read_table(path), task, size, how, **kw)


def errors(findings: list[Finding], check: str | None = None) -> list[Finding]:
    return [f for f in findings if f.level == "error" and (check is None or f.check == check)]


def of(findings: list[Finding], check: str, level: str) -> list[Finding]:
    return [f for f in findings if f.check == check and f.level == level]


XNLI_ROW = [3700, 3400, 3450, 3300, 3250, 3300, 3280, 3100, 3150, 3350, 3050, 3400, 3000, 2750,
            2900]  # correct of 5010 per language, English best


def xnli_row(n: int = 5010, ks: list[int] = XNLI_ROW) -> list[str]:
    return [pct(round(k * n / 5010), n) for k in ks]


@pytest.mark.parametrize("kind", ["csv", "md", "tex"])
def test_clean_table_has_no_errors_in_each_format(tmp_path: Path, kind: str) -> None:
    cells = xnli_row()
    avg = f"{sum(float(c) for c in cells) / len(cells):.1f}"
    path = write(tmp_path / f"t.{kind}", ["Model", *XNLI.languages, "Avg"],
                 [["mBERT", *cells, avg]], kind)
    if kind == "tex":
        path.write_text(path.read_text().replace("mBERT", "\\textbf{mBERT}"))
    table = read_table(path)
    assert table.columns == (*XNLI.languages, "avg") and table.rows[0][0] == "mBERT"
    found = run(path)
    assert errors(found) == [] and not [f for f in found if f.level == "warning"]
    assert len(of(found, "interval", "info")) == 16  # 15 cells and the average


def test_correctly_rounded_average_passes_and_a_wrong_one_fails(tmp_path: Path) -> None:
    """Cells 70.1 70.2 70.2 average 70.1667: a published 70.2 is correct rounding (the old 0.01
    tolerance refused it); 70.4 is not within the table's rounding."""
    header = ["sys", "en", "de", "fr", "avg"]
    ok = run(write(tmp_path / "ok.csv", header, [["a", "70.1", "70.2", "70.2", "70.2"]]),
             n=1000)
    assert of(ok, "average", "error") == []
    bad = run(write(tmp_path / "bad.csv", header, [["a", "70.1", "70.2", "70.2", "70.4"]]),
              n=1000)
    (err,) = of(bad, "average", "error")
    assert (err.row, err.column, err.value) == ("a", "avg", "70.4")
    assert "0.233 > 0.100" in err.message


def test_average_without_english_is_named(tmp_path: Path) -> None:
    found = run(write(tmp_path / "t.csv", ["sys", "en", "de", "fr", "avg"],
                      [["a", "80.0", "70.0", "72.0", "71.0"]]), n=1000)
    (w,) = of(found, "average", "warning")
    assert "mean without en" in w.message and errors(found, "average") == []


def test_dev_denominators_are_found(tmp_path: Path) -> None:
    values = dev_only(4)
    path = write(tmp_path / "t.md", ["Model", "en", "de", "fr", "es"], [["x", *values]], "md")
    found = run(path, split="test")
    cells = [f for f in errors(found, "granularity") if f.row is not None]
    assert len(cells) == 4 and all("fits n = 2490 (xnli dev)" in f.message for f in cells)
    table_level = [f for f in errors(found, "granularity") if f.row is None]
    assert len(table_level) == 1 and "n = 2490 (xnli dev)" in table_level[0].message
    assert errors(run(path, split="dev"), "granularity") == []


def test_granularity_untestable_when_rounding_is_coarse(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ["s", "en", "de"], [["x", "70.3", "65.1"]])
    found = run(path)
    assert errors(found, "granularity") == []
    assert "too few decimals" in of(found, "granularity", "info")[0].message


def test_below_chance(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ["s", "en", "de", "ja"], [["x", "90.00", "40.00", "49.50"]])
    found = run(path, task="pawsx")
    (err,) = of(found, "chance", "error")
    (warn,) = of(found, "chance", "warning")
    assert (err.column, warn.column) == ("de", "ja")
    assert "below chance (50.00 for 2 labels)" in err.message


def test_missing_languages_against_task_and_claim(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ["s", "en", "de", "fr", "es", "ja", "ko"],
                 [["x", "90.00", "85.00", "86.00", "86.50", "78.00", "77.00"]])
    (w,) = of(run(path, task="pawsx"), "languages", "warning")
    assert "['zh'] of the task pawsx" in w.message
    found = run(path, task="pawsx", claim_languages=PAWSX.target_languages, claim_id="C1")
    (e,) = errors(found, "languages")
    assert "['zh'] of claim C1" in e.message
    full = write(tmp_path / "f.csv", ["s", *PAWSX.languages],
                 [["x", "90.00", "85.00", "86.00", "86.50", "78.00", "77.00", "79.00"]])
    assert of(run(full, task="pawsx"), "languages", "warning") == []


def test_shifted_columns(tmp_path: Path) -> None:
    right = xnli_row()
    shifted = [right[1], right[0], *right[2:]]  # header says en, fr but values are fr, en
    path = write(tmp_path / "t.csv", ["s", *XNLI.languages], [["ok", *right], ["bad", *shifted]])
    (w,) = of(run(path), "column order", "warning")
    assert (w.row, w.column) == ("bad", "fr")


def test_intervals_match_scipy(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ["s", "en", "de", "avg"],
                 [["x", "90.00", "80.00", "85.00"]])
    found = of(run(path, task="pawsx"), "interval", "info")
    ci = binomtest(1600, 2000).proportion_ci(confidence_level=0.95)
    de = next(f for f in found if f.column == "de")
    assert f"[{100 * ci.low:.2f}, {100 * ci.high:.2f}]" in de.message
    avg = next(f for f in found if f.column == "avg")
    ci = binomtest(3400, 4000).proportion_ci(confidence_level=0.95, method="wilson")
    assert f"[{100 * ci.low:.2f}, {100 * ci.high:.2f}] pooled over 2 x 2000" in avg.message


def test_fractions_read_as_points(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ["s", "en", "de"], [["x", "0.9000", "0.8000"]])
    table = read_table(path)
    assert table.scale == "fraction"
    assert [c.value for c in table.rows[0][1]] == [90.0, 80.0]
    assert [c.decimals for c in table.rows[0][1]] == [2, 2]


def test_unreadable_tables(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="no header row"):
        read_table(write(tmp_path / "a.csv", ["s", "x", "y"], [["r", "1", "2"]]))
    with pytest.raises(TableError, match=r"b.csv:2: column de: 'abc' is not a number"):
        read_table(write(tmp_path / "b.csv", ["s", "en", "de"], [["r", "1", "abc"]]))
    table = read_table(write(tmp_path / "o.csv", ["s", "Params", "en", "de"],
                             [["r", "110M", "81.0", "70.0"]]))
    assert table.columns == ("en", "de")
    assert "column 'Params' is neither a language code nor an average" in table.notes[0]
    with pytest.raises(TableError, match="duplicated columns"):
        read_table(write(tmp_path / "c.csv", ["s", "en", "en"], [["r", "1", "2"]]))


def test_cli_exit_codes(tmp_path: Path, capsys, monkeypatch) -> None:
    good = write(tmp_path / "g.csv", ["s", *XNLI.languages], [["x", *xnli_row()]])
    assert main(["check-table", str(good)]) == 0
    out = capsys.readouterr().out
    assert "xnli test size assumed" in out and out.rstrip().endswith("0 error(s), 0 warning(s)")
    bad = write(tmp_path / "b.csv", ["s", "en", "de", "fr", "es"], [["x", *dev_only(4)]])
    assert main(["check-table", str(bad), "--task", "xnli", "--quiet"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(ln.startswith("ERROR granularity [x | en | ") for ln in lines)
    assert not any(ln.startswith("INFO") for ln in lines)
    assert main(["check-table", str(bad), "--split", "dev", "--task", "xnli"]) == 0
    capsys.readouterr()
    assert main(["check-table", str(tmp_path / "none.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    # a claim's languages, through claims.registry.load_claims
    claim = SimpleNamespace(id="X1", paper=(SimpleNamespace(task="xnli",
                                                            languages=("en", "de", "sw")),))
    monkeypatch.setattr(registry, "load_claims", lambda path: (claim,), raising=False)
    assert main(["check-table", str(good), "--claims", "c.yaml", "--claim", "X1"]) == 0
    part = write(tmp_path / "p.csv", ["s", "en", "de"], [["x", *xnli_row()[:2]]])
    assert main(["check-table", str(part), "--claims", "c.yaml", "--claim", "X1"]) == 1
    assert "['sw'] of claim X1" in capsys.readouterr().out
    assert main(["check-table", str(part), "--claims", "c.yaml", "--claim", "nope"]) == 2


def test_latex_grouping_row_citations_and_markup(tmp_path: Path) -> None:
    path = tmp_path / "t.tex"
    path.write_text("% results\n\\begin{tabular}{l|cc|c}\n\\hline\n"
                    " & \\multicolumn{2}{c}{PAWS-X} & \\\\\n"
                    "Method & En & De & Avg. \\\\ \\hline\n"
                    "mBERT~\\cite{devlin} & \\textbf{94.0} & $85.7$ & 89.9 \\\\\n"
                    "\\hline\n\\end{tabular}\n", encoding="utf-8")
    table = read_table(path)
    assert table.columns == ("en", "de", "avg")
    assert table.rows[0][0] == "mBERT" and [c.text for c in table.rows[0][1]] == \
        ["94.0", "85.7", "89.9"]
    assert table.notes == ("line 4 before the header not read:  | PAWS-X | ",)
    assert errors(run(path, task="pawsx")) == []


def test_claim_languages_from_a_claims_file(tmp_path: Path, capsys) -> None:
    """Through the YAML loader: the claim's part for the table's task gives the languages."""
    claims_file = tmp_path / "c.yaml"
    claims_file.write_text(
        "claims:\n  - id: T1\n    text: t\n    kind: statistical\n    verified: false\n"
        "    arms: {treatment: ours, control: mbert}\n    metric: accuracy\n    parts:\n"
        "      - {task: pawsx, languages: [de, es, fr, ja, ko, zh], description: six, gain: 3.0}\n")
    table = write(tmp_path / "t.csv", ["s", "en", "de", "es", "fr", "ja", "ko"],
                  [["x", "94.00", "85.70", "87.40", "87.00", "73.00", "69.60"]])
    assert main(["check-table", str(table), "--claims", str(claims_file), "--claim", "T1"]) == 1
    assert "ERROR languages: languages ['zh'] of claim T1" in capsys.readouterr().out
