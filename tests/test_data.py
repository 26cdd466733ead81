"""Data layer: strict parsing, clear errors, deterministic stratified subsets, hub path."""

from __future__ import annotations

from collections import Counter

import pytest

from salt import data as D
from salt.tasks import PAWSX, XNLI


def _write(root, task, split, lang, text):
    path = root / task / f"{split}-{lang}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_full_local_data_loads_in_one_call(data_dir):
    for spec in (XNLI, PAWSX):
        for lang in spec.languages:
            rows = D.load_local(spec.name, "test", lang, data_dir)
            assert len(rows) == (5010 if spec is XNLI else 2000)
    train = D.load_local("xnli", "train", "en", data_dir)
    assert len(train) == 29506
    assert train[0].uid == "xnli/train-en:1"


def test_leading_quote_is_text_not_quoting(tmp_path):
    _write(tmp_path, "xnli", "dev", "en", '"Hi," he said.\tHe spoke.\tentailment\n')
    [ex] = D.load_local("xnli", "dev", "en", tmp_path)
    assert ex.text_a == '"Hi," he said.' and ex.label == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a\tb\tentailment\nonly two\tcolumns\n", ":2: expected 3 tab-separated columns, found 2"),
        ("a\tb\tentailment\na\tb\tmaybe\n", ":2: unknown label 'maybe'"),
        ("a\t \tneutral\n", ":1: empty text_b"),
        ("\tb\tneutral\n", ":1: empty text_a"),
        ("a\tb\tneutral\textra\n", ":1: expected 3 tab-separated columns, found 4"),
        ("", ": no rows"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, content, message):
    path = _write(tmp_path, "xnli", "dev", "fr", content)
    with pytest.raises(D.DataError) as err:
        D.load_local("xnli", "dev", "fr", tmp_path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_invalid_utf8_is_reported(tmp_path):
    path = tmp_path / "xnli" / "dev-fr.tsv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"caf\xe9\tb\tneutral\n")
    with pytest.raises(D.DataError, match="not valid UTF-8"):
        D.load_local("xnli", "dev", "fr", tmp_path)


def test_missing_file_and_unknown_or_duplicate_language(tmp_path):
    with pytest.raises(D.DataError, match=r"dev-de\.tsv: missing file"):
        D.load_local("xnli", "dev", "de", tmp_path)
    with pytest.raises(D.DataError, match="unknown language 'xx'"):
        D.load_local("xnli", "dev", "xx", tmp_path)
    with pytest.raises(D.DataError, match="duplicate language 'fr'"):
        D.check_languages(XNLI, ["fr", "de", "fr"], key="data.languages.xnli")


def test_data_dir_must_be_set(monkeypatch):
    monkeypatch.delenv(D.DATA_DIR_ENV, raising=False)
    with pytest.raises(D.DataError, match="SALT_DATA_DIR"):
        D.data_dir()


def test_unknown_source_never_falls_back(tmp_path):
    with pytest.raises(D.DataError, match="unknown source 'web'"):
        D.load_split("xnli", "dev", "en", source="web", root=tmp_path)


def _examples(labels):
    return [D.Example(f"xnli/dev-en:{i + 1}", "a", "b", lab) for i, lab in enumerate(labels)]


def test_stratified_subset_keeps_shares_and_is_deterministic():
    rows = _examples([0] * 60 + [1] * 30 + [2] * 10)
    a = D.stratified_subset(rows, 20, seed=3)
    assert Counter(e.label for e in a) == {0: 12, 1: 6, 2: 2}
    assert a == D.stratified_subset(rows, 20, seed=3)
    assert a != D.stratified_subset(rows, 20, seed=4)
    assert [e.line for e in a] == sorted(e.line for e in a)
    assert D.stratified_subset(rows, None, 0) == rows


def test_largest_remainder_rounding():
    rows = _examples([0] * 5 + [1] * 5 + [2] * 5)
    assert Counter(e.label for e in D.stratified_subset(rows, 4, 0)) == {0: 2, 1: 1, 2: 1}


def test_parallel_subset_picks_same_lines(data_dir):
    per = {lang: D.load_local("xnli", "test", lang, data_dir) for lang in ("en", "sw", "ur")}
    sub = D.parallel_subset(per, 30, seed=0)
    lines = [e.line for e in sub["en"]]
    assert len(lines) == 30
    for lang in ("sw", "ur"):
        assert [e.line for e in sub[lang]] == lines
        assert [e.label for e in sub[lang]] == [e.label for e in sub["en"]]
    with pytest.raises(D.DataError, match="row-parallel"):
        D.parallel_subset({"en": per["en"], "sw": per["sw"][:-1]}, 10, seed=0)


def _hub_loader(tmp_path, rows):
    """A loader with ``datasets.load_dataset``'s signature that reads local parquet files laid
    out like the hub dataset (config = language, field names and label ids as on the hub)."""
    import datasets

    calls = []

    def loader(path, name, split, revision=None):
        calls.append((path, name, split, revision))
        target = tmp_path / path / name / f"{split}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict(rows).to_parquet(str(target))
        return datasets.load_dataset("parquet", data_files={split: str(target)}, split=split,
                                     cache_dir=str(tmp_path / "cache"))

    return loader, calls


def test_hub_path_reads_hub_format(tmp_path):
    loader, calls = _hub_loader(tmp_path, {"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"],
                                           "label": [2, 0]})
    rows = D.load_hub("xnli", "test", "fr", revision="abc123", loader=loader)
    assert calls == [("facebook/xnli", "fr", "test", "abc123")]
    assert [(r.uid, r.text_a, r.label) for r in rows] == [
        ("xnli/test-fr:1", "p1", 2), ("xnli/test-fr:2", "p2", 0)]


def test_hub_bad_rows_are_named(tmp_path):
    loader, _ = _hub_loader(tmp_path, {"sentence1": ["a"], "sentence2": ["b"], "label": [5]})
    with pytest.raises(D.DataError, match=r"paws-x/de/validation row 1: label 5 outside 0..1"):
        D.load_hub("pawsx", "dev", "de", loader=loader)
    loader, _ = _hub_loader(tmp_path / "x", {"premise": ["a"], "label": [0]})
    with pytest.raises(D.DataError, match="row 1: missing field 'hypothesis'"):
        D.load_hub("xnli", "dev", "de", loader=loader)


def test_hub_failure_is_an_error_not_a_fallback(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    with pytest.raises(D.DataError, match=r"hub:facebook/xnli config en .*ConnectionError"):
        D.load_hub("xnli", "train", "en", loader=offline)


def test_real_hub_loader_offline_fails_clearly():
    """The default loader is ``datasets.load_dataset``; offline with an empty cache it must
    raise a DataError naming the request rather than fall back to local files."""
    with pytest.raises(D.DataError, match=r"hub:facebook/xnli config en split validation"):
        D.load_hub("xnli", "dev", "en", revision="main")


def test_hub_revision_is_resolved_and_errors_are_clear():
    class Api:
        def dataset_info(self, hub_id):
            assert hub_id == "facebook/xnli"
            return type("Info", (), {"sha": "0123abcd"})()

    assert D.resolve_hub_revision("facebook/xnli", None, api=Api()) == "0123abcd"
    assert D.resolve_hub_revision("facebook/xnli", "pinned", api=Api()) == "pinned"

    class Offline:
        def dataset_info(self, hub_id):
            raise OSError("offline")

    with pytest.raises(D.DataError, match=r"set data\.hub_revision"):
        D.resolve_hub_revision("facebook/xnli", None, api=Offline())
