"""Target-language vocabularies: the rule on hand-made counts, on a real tokenizer, and the file."""

from __future__ import annotations

import json
import os
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from salt.vocab import (
    LanguageVocabs,
    PieceScheme,
    VocabError,
    VocabRule,
    build_from_counts,
    build_vocabularies,
    detect_scheme,
    special_ids,
)

DATA = Path(os.environ.get("SALT_DATA_DIR", "/work/shared/data"))

# id -> WordPiece piece; 0-4 are special
PIECES = {0: "[PAD]", 1: "[UNK]", 2: "[CLS]", 3: "[SEP]", 4: "[MASK]", 5: "le", 6: "the",
          7: "##s", 8: "123", 9: ",", 10: "maison", 11: "rare", 12: "chat", 13: "1,5",
          14: "##ment", 15: "Paris"}
SPECIALS = {0, 1, 2, 3, 4}
EN = {6: 100, 5: 1, 9: 50, 8: 10, 12: 1, 15: 3}
FR = {5: 30, 6: 5, 7: 10, 8: 10, 9: 40, 10: 3, 11: 1, 2: 10, 13: 4, 12: 2, 14: 6, 15: 2}
WP = PieceScheme("wordpiece")


def build(whole: dict | None = None, **rule) -> LanguageVocabs:
    rule.setdefault("source_share_ratio", None)
    wholes = None if whole is None else {"en": EN, "fr": whole}
    return build_from_counts(PIECES, {"en": EN, "fr": FR}, SPECIALS, "en", VocabRule(**rule), WP,
                             whole_counts_by_lang=wholes)


def test_rule_hand_made_counts() -> None:
    v = build(min_count=2, source_top_k=1)
    # 'the' is English's most frequent id; continuations, digits, punctuation, specials, rare out
    assert v.ids("fr").tolist() == [5, 10, 12, 15]
    assert v.removed["fr"] == {"special": 1, "digits_punct": 3, "continuation": 2,
                               "below_min_count": 1, "source_frequent": 1, "script": 0,
                               "other_language_frequent": 0}
    assert v.entries["fr"][5] == ("le", 30, 1, 30)
    assert v.languages == ("fr",)
    # the source set: same rule without the English exclusion
    assert v.ids("en").tolist() == [6, 15]


def test_script_and_other_language_guard() -> None:
    """A Thai set keeps only Thai-script ids and a French set only Latin ones; an id another
    target language uses far more ("y": Spanish) leaves French, a word both use alike stays."""
    pieces = {0: "[PAD]", 5: "de", 6: "y", 7: "บ้าน", 8: "im", 9: "maison", 10: "casa",
              11: "ไป", 12: "the"}
    en = {12: 100, 8: 2}
    fr = {5: 50, 6: 2, 7: 3, 9: 5}
    es = {5: 60, 6: 40, 10: 5}
    th = {7: 20, 8: 5, 11: 7}
    counts = {"en": en, "fr": fr, "es": es, "th": th}
    rule = VocabRule(min_count=2, source_top_k=1, source_share_ratio=None)
    v = build_from_counts(pieces, counts, {0}, "en", rule, WP)
    assert v.ids("fr").tolist() == [5, 9]  # de, maison: not y (Spanish), not บ้าน (Thai)
    assert v.removed["fr"]["other_language_frequent"] == 1 and v.removed["fr"]["script"] == 1
    assert v.ids("es").tolist() == [5, 6, 10]
    assert v.ids("th").tolist() == [7, 11]  # im is Latin: out of the Thai set
    off = build_from_counts(pieces, counts, {0}, "en",
                            VocabRule(min_count=2, source_top_k=1, source_share_ratio=None,
                                      other_share_ratio=None, script_check=False), WP)
    assert off.ids("fr").tolist() == [5, 6, 7, 9] and off.ids("th").tolist() == [7, 8, 11]


def test_rule_source_count_and_switches() -> None:
    # any id seen in English at all is excluded
    assert build(source_top_k=None, source_max_count=1).ids("fr").tolist() == [10]
    # seen >= 3 times in English: 'the' and 'Paris' out
    assert build(source_top_k=None, source_max_count=3).ids("fr").tolist() == [5, 10, 12]
    # no English exclusion at all
    assert build(source_top_k=None).ids("fr").tolist() == [5, 6, 10, 12, 15]
    # continuation pieces admitted when word_start_only is off
    assert build(source_top_k=1, word_start_only=False).ids("fr").tolist() == [5, 7, 10, 12, 14, 15]
    assert build(source_top_k=1, min_count=5).ids("fr").tolist() == [5]


def test_rule_share_ratio_and_whole_words() -> None:
    # shares: English 165 tokens, French 123. the: 100/165 >= 5/123; Paris: 3/165 >= 2/123;
    # chat: 1/165 < 2/123 stays; le: 1/165 < 30/123 stays
    v = build(source_top_k=None, source_share_ratio=1.0)
    assert v.ids("fr").tolist() == [5, 10, 12]
    assert v.removed["fr"]["source_frequent"] == 2
    assert build(source_top_k=None, source_share_ratio=0.1).ids("fr").tolist() == [5, 10]
    # 'maison' occurs 3 times but only once as a whole word: a fragment, below min_count 2
    whole = {5: 30, 10: 1, 12: 2, 15: 2}
    v = build(whole=whole, source_top_k=1)
    assert v.ids("fr").tolist() == [5, 12, 15]
    assert v.entries["fr"][12] == ("chat", 2, 1, 2)
    assert build(whole=whole, source_top_k=1, whole_words=False).ids("fr").tolist() == [5, 10, 12,
                                                                                       15]


def test_metaspace_scheme_and_unspaced_scripts() -> None:
    pieces = {0: "<s>", 1: "▁le", 2: "le", 3: "▁", 4: "▁,", 5: "猫", 6: "▁12", 7: "ไทย", 8: "▁chat"}
    counts = {"en": {8: 1}, "fr": {i: 5 for i in range(9)}, "zh": {5: 3, 7: 3}}
    sp = PieceScheme("metaspace")
    # word starts only here (the script test, off, is checked in test_script_and_other_...)
    plain = {"source_top_k": 1, "source_share_ratio": None, "script_check": False,
             "other_share_ratio": None}
    v = build_from_counts(pieces, counts, {0}, "en", VocabRule(**plain), sp)
    assert v.ids("fr").tolist() == [1, 5, 7]  # '▁chat' is English top-1; 'le' a continuation
    assert v.ids("zh").tolist() == [5, 7]
    v2 = build_from_counts(pieces, counts, {0}, "en", VocabRule(**plain, unspaced_scripts=False),
                           sp)
    assert v2.ids("fr").tolist() == [1]
    scripted = build_from_counts(pieces, counts, {0}, "en",
                                 VocabRule(source_top_k=1, source_share_ratio=None), sp)
    assert scripted.ids("fr").tolist() == [1] and scripted.ids("zh").tolist() == [5]
    assert v2.ids("zh").numel() == 0
    assert sp.text("▁chat") == "chat" and not sp.is_word_start("le")
    assert sp.is_digits_or_punct("▁") and sp.is_digits_or_punct("▁12") and sp.is_punct("▁,")
    assert not WP.is_word_start("##ไทย") and WP.is_word_start("猫")  # WordPiece: markers only


PIECE_POOL = ["le", "the", "##s", "123", ",", "maison", "x", "##ab", "?!", "猫", "12a", "élan"]


@settings(max_examples=60, deadline=None)
@given(
    en=st.dictionaries(st.integers(0, 15), st.integers(1, 20), max_size=16),
    fr=st.dictionaries(st.integers(0, 15), st.integers(1, 20), max_size=16),
    min_count=st.integers(1, 5),
    top_k=st.one_of(st.none(), st.integers(0, 6)),
    max_count=st.one_of(st.none(), st.integers(1, 10)),
    ratio=st.one_of(st.none(), st.floats(0.05, 4.0)),
    word_start_only=st.booleans(),
    whole_words=st.booleans(),
    data=st.data(),
)
def test_rule_characterises_membership(en, fr, min_count, top_k, max_count, ratio,
                                       word_start_only, whole_words, data) -> None:
    """Every kept id passes every test; every seen id left out fails at least one."""
    pieces = {i: PIECE_POOL[i % len(PIECE_POOL)] for i in range(16)}
    specials = {0, 1}
    whole = {i: data.draw(st.integers(0, c)) for i, c in fr.items()}
    rule = VocabRule(min_count=min_count, source_top_k=top_k, source_max_count=max_count,
                     source_share_ratio=ratio, word_start_only=word_start_only,
                     whole_words=whole_words)
    v = build_from_counts(pieces, {"en": en, "fr": fr}, specials, "en", rule, WP,
                          whole_counts_by_lang={"en": en, "fr": whole})
    ranked = [i for i, _ in sorted(en.items(), key=lambda kv: (-kv[1], kv[0]))]
    frequent = set(ranked[:top_k] if top_k else [])
    if max_count is not None:
        frequent |= {i for i, c in en.items() if c >= max_count}
    if ratio is not None:
        n_en, n_fr = sum(en.values()) or 1, sum(fr.values())
        frequent |= {i for i, c in fr.items() if en.get(i, 0) / n_en >= ratio * c / n_fr}

    def ok(i: int) -> bool:
        p = pieces[i]
        enough = (whole[i] if whole_words else fr[i]) >= min_count
        return (enough and i not in frequent and i not in specials
                and not all(not ch.isalpha() for ch in WP.text(p))
                and all(unicodedata.name(ch).startswith("LATIN ")  # French: Latin script
                        for ch in WP.text(p) if ch.isalpha())
                and not (word_start_only and p.startswith("##")))

    assert set(v.ids("fr").tolist()) == {i for i in fr if ok(i)}
    assert v.ids("fr").tolist() == sorted(v.ids("fr").tolist())
    for i, (piece, c, cs, cw) in v.entries["fr"].items():
        assert piece == pieces[i] and c == fr[i] and cs == en.get(i, 0) and cw == whole[i]


# ----------------------------------------------------------------------------- real tokenizer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from salt.data import load_local
    from salt.models import build_tiny, load_tokenizer

    texts = {}
    for lang in ("en", "fr", "de"):
        rows = load_local("xnli", "dev", lang, DATA)[:150]
        texts[lang] = [t for e in rows for t in (e.text_a, e.text_b)]
    path = build_tiny(tmp_path_factory.mktemp("tiny"), [t for ts in texts.values() for t in ts],
                      vocab_size=1500, hidden=32, layers=1, heads=2)
    return load_tokenizer(path), texts


def recount(tok, texts: list[str]) -> tuple[Counter, Counter]:
    """All and whole-word (not followed by '##') WordPiece occurrences, counted independently."""
    counts, whole = Counter(), Counter()
    for t in texts:
        pieces = tok.tokenize(t)
        ids = tok.convert_tokens_to_ids(pieces)
        counts.update(ids)
        for k, piece in enumerate(pieces):
            nxt = pieces[k + 1] if k + 1 < len(pieces) else ""
            if not piece.startswith("##") and not nxt.startswith("##"):
                whole[ids[k]] += 1
    return counts, whole


def test_build_on_real_text(tiny) -> None:
    tok, texts = tiny
    assert detect_scheme(tok).kind == "wordpiece"
    v = build_vocabularies(tok, texts, min_count=2, source_top_k=100)
    assert v.languages == ("fr", "de") and v.source_lang == "en"
    en_counts, _ = recount(tok, texts["en"])
    top = {i for i, _ in sorted(en_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:100]}
    specials = special_ids(tok)
    n_en = sum(en_counts.values())
    for lang in ("fr", "de"):
        counts, whole = recount(tok, texts[lang])
        n = sum(counts.values())
        ids = v.ids(lang)
        assert ids.dtype == torch.long and len(ids) > 50
        for i in ids.tolist():
            piece = tok.convert_ids_to_tokens(i)
            assert whole[i] >= 2 and i not in top and i not in specials
            assert en_counts.get(i, 0) / n_en < counts[i] / n  # share ratio 1.0
            assert not piece.startswith("##") and any(ch.isalpha() for ch in piece)
            assert v.entries[lang][i] == (piece, counts[i], en_counts.get(i, 0), whole[i])
    assert v.tokenizer_info["size"] == len(tok)
    v.check_tokenizer(tok)


def test_build_errors(tiny) -> None:
    tok, texts = tiny
    with pytest.raises(VocabError, match="source language 'en'"):
        build_vocabularies(tok, {"fr": texts["fr"]})
    with pytest.raises(VocabError, match="unknown vocabulary rule parameter"):
        build_vocabularies(tok, texts, min_cout=2)
    with pytest.raises(VocabError, match="min_count"):
        build_vocabularies(tok, texts, min_count=0)
    with pytest.raises(VocabError, match="no vocabulary for language 'xx'"):
        build_vocabularies(tok, texts).ids("xx")


def test_save_load_roundtrip(tiny, tmp_path) -> None:
    tok, texts = tiny
    v = build_vocabularies(tok, texts, min_count=3, source_top_k=50)
    path = v.save(tmp_path / "vocabs.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert str(tmp_path.parent) not in path.read_text(encoding="utf-8")  # no machine paths
    assert "/" not in data["tokenizer"]["name"]
    assert data["rule"] == {"min_count": 3, "whole_words": True, "source_top_k": 50,
                            "source_max_count": None, "source_share_ratio": 1.0,
                            "other_share_ratio": 4.0, "script_check": True,
                            "word_start_only": True, "unspaced_scripts": True,
                            "scheme": "wordpiece"}
    row = data["languages"]["fr"]["entries"][0]
    assert set(row) == {"id", "piece", "count", "count_whole", "count_source"}
    assert data["languages"]["fr"]["removed"]["source_frequent"] > 0
    w = LanguageVocabs.load(path)
    assert w.entries == v.entries and w.rule == v.rule and w.languages == v.languages
    assert torch.equal(w.ids("de"), v.ids("de"))


def _broken(tmp_path: Path, data: dict, name: str = "bad.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


def test_load_errors_name_file_and_key(tiny, tmp_path) -> None:
    tok, texts = tiny
    good = build_vocabularies(tok, texts).to_json()
    with pytest.raises(VocabError, match="no such vocabulary file"):
        LanguageVocabs.load(tmp_path / "missing.json")
    bad = tmp_path / "garbage.json"
    bad.write_text("{not json")
    with pytest.raises(VocabError, match=r"garbage\.json: not valid JSON"):
        LanguageVocabs.load(bad)
    d = json.loads(json.dumps(good))
    del d["languages"]["fr"]["entries"]
    with pytest.raises(VocabError, match=r"bad\.json: missing key 'languages\.fr\.entries'"):
        LanguageVocabs.load(_broken(tmp_path, d))
    d = json.loads(json.dumps(good))
    d["languages"]["de"]["entries"][3]["count"] = "7"
    with pytest.raises(VocabError, match=r"key 'languages\.de\.entries\[3\]\.count' has type str"):
        LanguageVocabs.load(_broken(tmp_path, d))
    d = json.loads(json.dumps(good))
    d["rule"]["min_cnt"] = 2
    with pytest.raises(VocabError, match=r"unknown key.*'rule'.*min_cnt"):
        LanguageVocabs.load(_broken(tmp_path, d))
    d = json.loads(json.dumps(good))
    d["format"] = "other/9"
    with pytest.raises(VocabError, match="key 'format'"):
        LanguageVocabs.load(_broken(tmp_path, d))
    d = json.loads(json.dumps(good))
    del d["languages"]["en"]
    with pytest.raises(VocabError, match="source language 'en'"):
        LanguageVocabs.load(_broken(tmp_path, d))
