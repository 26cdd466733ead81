"""Per-language sub-word vocabularies: the sets SALT restricts its MLM predictions to.

The rule (every threshold a parameter, recorded in the saved file):

A sub-word id belongs to target language L's set when

1. it occurs at least ``min_count`` times in L's unlabeled text, tokenised with the model's own
   tokenizer (no special tokens added); with ``whole_words`` (default) only occurrences as a
   whole word count (a word start followed by another word start, punctuation or the end), so
   fragments such as "cha" (from "chaque") do not qualify as substitutes for whole words;
2. it is not frequent in the source language (English): not among the ``source_top_k`` most
   frequent English ids, not seen ``source_max_count`` or more times in the English text, and
   (``source_share_ratio`` r) its share of English tokens is below r times its share of L's
   tokens (each test may be switched off with None);
2b. (``other_share_ratio`` r', default 4) no other target language uses it much more: its share
   of any other target language's tokens (seen there at least ``min_count`` times) is below r'
   times its share of L's tokens, so Spanish "y" leaves the French set while "de" stays in both;
2c. (``script_check``) its letters are written in L's script (``LANGUAGE_SCRIPTS``: an id of the
   Thai set must be Thai, of the French set Latin); a language not listed is not checked;
3. it is not a special token, and its piece (marker stripped) is not empty and not made only of
   digits, punctuation, symbols and whitespace;
4. with ``word_start_only`` (default): it starts a word (WordPiece: no ``##`` prefix;
   SentencePiece: a leading ``▁``), so that a substitute is a whole word start. With
   ``unspaced_scripts`` (default) and a SentencePiece tokenizer, a piece written only in a
   script that uses no spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar, Tibetan)
   also counts as a word start: SentencePiece rarely puts ``▁`` inside Chinese or Thai text,
   and without this those languages would get almost empty sets.

The source language's own set (used only by the optional synonym mode, the seed's unverified C5)
follows the same rule without tests 2 and 2b.

Nothing here reads a dictionary or parallel text: only each language's monolingual text.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from transformers import PreTrainedTokenizerBase

FORMAT = "salt-vocabs/1"
WORDPIECE, METASPACE = "wordpiece", "metaspace"
_SP_MARK = "▁"  # U+2581, SentencePiece's word-start marker
_WP_MARK = "##"


class VocabError(ValueError):
    """A vocabulary file or request that cannot be used; the message names the file and key."""


# ----------------------------------------------------------------------------- piece helpers


_UNSPACED_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x0F00, 0x0FFF),  # Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x2FA1F),  # CJK extensions B..
)


def _is_unspaced_char(ch: str) -> bool:
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in _UNSPACED_RANGES)


def _is_punct_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return ch.isspace() or cat[0] in "PSZ" or cat in ("Cc", "Cf")


# Unicode script (first word of a letter's character name) of each task language's writing;
# a language not listed here is not script-checked
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **{lang: frozenset({"LATIN"}) for lang in ("de", "en", "es", "fr", "sw", "tr", "vi")},
    "ar": frozenset({"ARABIC"}), "ur": frozenset({"ARABIC"}),
    "bg": frozenset({"CYRILLIC"}), "ru": frozenset({"CYRILLIC"}),
    "el": frozenset({"GREEK"}), "hi": frozenset({"DEVANAGARI"}), "th": frozenset({"THAI"}),
    "zh": frozenset({"CJK"}), "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL"}),
}


def letter_scripts(text: str) -> set[str]:
    """Scripts of the letters of ``text`` (combining marks, digits and punctuation ignored)."""
    out = set()
    for ch in text:
        if unicodedata.category(ch)[0] not in "LM":
            continue
        name = unicodedata.name(ch, "")
        if name and not name.startswith("COMBINING"):
            out.add(name.split()[0])
    return out


def in_script(text: str, lang: str) -> bool:
    """Whether ``text`` is written in ``lang``'s script: at least one letter, every letter of
    one of its scripts (True for a language without a known script)."""
    scripts = LANGUAGE_SCRIPTS.get(lang)
    if scripts is None:
        return True
    found = letter_scripts(text)
    return bool(found) and found <= scripts


def _is_digit_or_punct_char(ch: str) -> bool:
    return _is_punct_char(ch) or unicodedata.category(ch)[0] == "N"


@dataclass(frozen=True)
class PieceScheme:
    """How a tokenizer marks word starts: ``wordpiece`` (continuations start with ``##``) or
    ``metaspace`` (SentencePiece/XLM-R: word starts begin with ``▁``)."""

    kind: str

    def __post_init__(self) -> None:
        if self.kind not in (WORDPIECE, METASPACE):
            raise VocabError(f"scheme: unknown piece scheme {self.kind!r}; "
                             f"use {WORDPIECE!r} or {METASPACE!r}")

    def text(self, piece: str) -> str:
        """The piece without its word-start/continuation marker."""
        if self.kind == WORDPIECE:
            return piece[2:] if piece.startswith(_WP_MARK) else piece
        return piece[1:] if piece.startswith(_SP_MARK) else piece

    def is_marked_start(self, piece: str) -> bool:
        """True when the marker says the piece begins a word."""
        if self.kind == WORDPIECE:
            return not piece.startswith(_WP_MARK)
        return piece.startswith(_SP_MARK)

    def is_word_start(self, piece: str, unspaced_scripts: bool = True) -> bool:
        """Marked word start, or (``unspaced_scripts``, SentencePiece only) a piece written only
        in a script without spaces. WordPiece needs no exception: BERT already splits CJK
        characters into word starts, and its ``##`` pieces of Thai runs are fragments."""
        if self.is_marked_start(piece):
            return True
        if not unspaced_scripts or self.kind != METASPACE:
            return False
        body = self.text(piece)
        return bool(body) and all(_is_unspaced_char(c) for c in body)

    def is_digits_or_punct(self, piece: str) -> bool:
        """Empty after the marker, or only digits / punctuation / symbols / whitespace."""
        body = self.text(piece)
        return not body or all(_is_digit_or_punct_char(c) for c in body)

    def is_punct(self, piece: str) -> bool:
        """Only punctuation / symbols / whitespace (digits excluded): never glued to a word."""
        body = self.text(piece)
        return bool(body) and all(_is_punct_char(c) for c in body)


def detect_scheme(tokenizer: PreTrainedTokenizerBase) -> PieceScheme:
    """Guess the piece scheme from the vocabulary: whichever marker more pieces carry."""
    pieces = tokenizer.get_vocab().keys()
    wp = sum(p.startswith(_WP_MARK) for p in pieces)
    sp = sum(p.startswith(_SP_MARK) for p in pieces)
    if wp == 0 and sp == 0:
        raise VocabError("cannot tell the tokenizer's piece scheme: no '##' and no '▁' pieces; "
                         "pass scheme='wordpiece' or 'metaspace'")
    return PieceScheme(WORDPIECE if wp >= sp else METASPACE)


def special_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Ids of special tokens ([CLS], [SEP], [PAD], [MASK], [UNK], <s>, ... and added specials)."""
    ids = set(tokenizer.all_special_ids)
    for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(tok, "special", False):
            ids.add(int(i))
    return ids


def count_ids(tokenizer: PreTrainedTokenizerBase, texts: Iterable[str], scheme: PieceScheme,
              unspaced_scripts: bool = True, batch: int = 1024
              ) -> tuple[Counter[int], Counter[int], int]:
    """Sub-word id counts over ``texts`` (no special tokens added): all occurrences, whole-word
    occurrences (a word start whose next piece is a word start, punctuation or the end), and the
    total token count."""
    counts: Counter[int] = Counter()
    whole: Counter[int] = Counter()
    starts: dict[int, bool] = {}
    puncts: dict[int, bool] = {}
    buf: list[str] = []
    total = 0

    def kind(i: int) -> tuple[bool, bool]:
        if i not in starts:
            piece = tokenizer.convert_ids_to_tokens(i)
            starts[i] = scheme.is_word_start(piece, unspaced_scripts)
            puncts[i] = scheme.is_punct(piece)
        return starts[i], puncts[i]

    def flush() -> None:
        nonlocal total
        for ids in tokenizer(buf, add_special_tokens=False)["input_ids"]:
            counts.update(ids)
            total += len(ids)
            for k, i in enumerate(ids):
                if not kind(i)[0]:
                    continue
                if k + 1 == len(ids) or any(kind(ids[k + 1])):
                    whole[i] += 1
        buf.clear()

    for t in texts:
        buf.append(t)
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    return counts, whole, total


# ----------------------------------------------------------------------------- the rule


@dataclass(frozen=True)
class VocabRule:
    """Parameters of the language-vocabulary rule (see the module docstring)."""

    min_count: int = 2  # occurrences needed in the language's own text
    whole_words: bool = True  # min_count counts only whole-word occurrences of the piece
    source_top_k: int | None = 1000  # exclude the k most frequent source-language ids (None: off)
    source_max_count: int | None = None  # exclude ids seen this often in source text (None: off)
    source_share_ratio: float | None = 1.0  # exclude ids whose share of source tokens is >=
    # ratio x their share of the language's tokens (None: off): names and English words that
    # occur in the language's text about as often as in English are English's, not L's
    other_share_ratio: float | None = 4.0  # exclude from target L an id whose share of another
    # target language's tokens is >= ratio x its share of L's (None: off): "y" in French
    # copies is Spanish's; shared words used alike ("de") stay
    script_check: bool = True  # an id of L's set is written in L's script (LANGUAGE_SCRIPTS)
    word_start_only: bool = True  # keep only pieces that start a word
    unspaced_scripts: bool = True  # pieces only in CJK/Thai/... scripts count as word starts
    scheme: str | None = None  # "wordpiece" | "metaspace"; None: detected from the vocabulary

    def check(self) -> None:
        if self.min_count < 1:
            raise VocabError(f"min_count: must be >= 1, got {self.min_count}")
        if self.source_top_k is not None and self.source_top_k < 0:
            raise VocabError(f"source_top_k: must be >= 0 or None, got {self.source_top_k}")
        if self.source_max_count is not None and self.source_max_count < 1:
            raise VocabError(f"source_max_count: must be >= 1 or None, got {self.source_max_count}")
        for key in ("source_share_ratio", "other_share_ratio"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise VocabError(f"{key}: must be > 0 or None, got {value}")


def source_frequent(source_counts: Mapping[int, int], rule: VocabRule) -> set[int]:
    """Source-language ids too frequent to count as another language's (rule test 2)."""
    out: set[int] = set()
    if rule.source_top_k:
        ranked = sorted(source_counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out.update(i for i, _ in ranked[: rule.source_top_k])
    if rule.source_max_count is not None:
        out.update(i for i, c in source_counts.items() if c >= rule.source_max_count)
    return out


def other_frequent(counts: Mapping[int, int], other_counts: Mapping[str, Mapping[int, int]],
                   rule: VocabRule) -> set[int]:
    """Ids another language uses much more (``other_share_ratio``) than this one: seen at least
    ``min_count`` times there, with a share of its tokens >= ratio x the share here."""
    if rule.other_share_ratio is None:
        return set()
    n_lang = sum(counts.values()) or 1
    out = set()
    for other in other_counts.values():
        n_other = sum(other.values()) or 1
        out.update(i for i, c in counts.items()
                   if other.get(i, 0) >= rule.min_count
                   and other.get(i, 0) / n_other >= rule.other_share_ratio * c / n_lang)
    return out


def select_ids(pieces: Mapping[int, str], counts: Mapping[int, int],
               source_counts: Mapping[int, int], specials: set[int], rule: VocabRule,
               scheme: PieceScheme, exclude_source: bool = True,
               whole_counts: Mapping[int, int] | None = None, lang: str | None = None,
               other_counts: Mapping[str, Mapping[int, int]] | None = None
               ) -> tuple[list[int], dict[str, int]]:
    """Apply the rule to precomputed counts. Returns the sorted ids and how many ids each test
    removed (among ids seen at least once), so a reader can see where the set shrank.

    ``pieces`` maps id -> piece string; ``exclude_source=False`` builds the source set itself;
    ``whole_counts`` (whole-word occurrences) feed min_count under ``rule.whole_words`` (None:
    every occurrence counts as whole). ``lang`` (the set's language) enables the script test;
    ``other_counts`` (other target languages' counts) the other-language guard.
    """
    min_counts = whole_counts if (rule.whole_words and whole_counts is not None) else counts
    rule.check()
    frequent = source_frequent(source_counts, rule) if exclude_source else set()
    if exclude_source and rule.source_share_ratio is not None:
        n_src = sum(source_counts.values()) or 1
        n_lang = sum(counts.values()) or 1
        frequent.update(i for i, c in counts.items() if source_counts.get(i, 0) / n_src
                        >= rule.source_share_ratio * c / n_lang)
    others = other_frequent(counts, other_counts or {}, rule) if exclude_source else set()
    removed = Counter({k: 0 for k in ("special", "digits_punct", "continuation", "script",
                                      "below_min_count", "source_frequent",
                                      "other_language_frequent")})
    keep: list[int] = []
    for i in counts:
        piece = pieces.get(i)
        if i in specials or piece is None:
            removed["special"] += 1
        elif scheme.is_digits_or_punct(piece):
            removed["digits_punct"] += 1
        elif rule.word_start_only and not scheme.is_word_start(piece, rule.unspaced_scripts):
            removed["continuation"] += 1
        elif rule.script_check and lang is not None and not in_script(scheme.text(piece), lang):
            removed["script"] += 1
        elif min_counts.get(i, 0) < rule.min_count:
            removed["below_min_count"] += 1
        elif i in frequent:
            removed["source_frequent"] += 1
        elif i in others:
            removed["other_language_frequent"] += 1
        else:
            keep.append(i)
    return sorted(keep), dict(removed)


# ----------------------------------------------------------------------------- the file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class VocabEntry(_Strict):
    id: int
    piece: str
    count: int
    count_whole: int
    count_source: int


class VocabLanguage(_Strict):
    role: Literal["source", "target"]
    size: int
    corpus: dict[str, int] = {}
    removed: dict[str, int] = {}
    entries: list[VocabEntry]


class VocabFile(_Strict):
    """The saved vocabulary file (``LanguageVocabs.save``), checked on load."""

    format: Literal[FORMAT]  # type: ignore[valid-type]
    source_lang: str
    rule: dict[str, Any]
    tokenizer: dict[str, Any] = {}
    languages: dict[str, VocabLanguage]


def _validation_message(err: ValidationError) -> str:
    """The first problem of a validation error as "key 'a.b[3].c' ...": what and where."""
    first = err.errors()[0]
    key = ""
    for part in first["loc"]:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    kind = first["type"]
    if kind == "missing":
        return f"missing key '{key}'"
    if kind == "extra_forbidden":
        return f"unknown key '{key}'"
    if kind.endswith("_type") or kind == "model_type":
        return f"key '{key}' has type {type(first.get('input')).__name__}"
    return f"key '{key}': {first['msg']} (got {first.get('input')!r})"


# ----------------------------------------------------------------------------- the sets


@dataclass
class LanguageVocabs:
    """Target-language id sets (plus the source language's own set) and why each id is there.

    ``entries[lang][id] = (piece, count_in_lang, count_in_source, whole_word_count_in_lang)``;
    ``languages`` lists the target languages; ``ids(source_lang)`` gives the source set used by
    the synonym mode.
    """

    source_lang: str
    rule: VocabRule
    entries: dict[str, dict[int, tuple[str, int, int, int]]]
    tokenizer_info: dict[str, Any] = field(default_factory=dict)
    corpus: dict[str, dict[str, int]] = field(default_factory=dict)
    removed: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def languages(self) -> tuple[str, ...]:
        """Target languages (the source language excluded), in insertion order."""
        return tuple(lang for lang in self.entries if lang != self.source_lang)

    def ids(self, lang: str) -> torch.Tensor:
        """Sorted ids of ``lang``'s set, as a LongTensor (|V_L|,)."""
        if lang not in self.entries:
            raise VocabError(f"no vocabulary for language {lang!r}; have {sorted(self.entries)}")
        return torch.tensor(sorted(self.entries[lang]), dtype=torch.long)

    def digest(self, lang: str) -> str:
        """Short sha256 of a language's id set (to tie outputs to the sets that made them)."""
        h = hashlib.sha256(json.dumps(sorted(self.entries[lang])).encode())
        return h.hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        langs = {}
        for lang, ent in self.entries.items():
            langs[lang] = {
                "role": "source" if lang == self.source_lang else "target",
                "size": len(ent),
                "corpus": self.corpus.get(lang, {}),
                "removed": self.removed.get(lang, {}),
                "entries": [
                    {"id": i, "piece": p, "count": c, "count_whole": cw, "count_source": cs}
                    for i, (p, c, cs, cw) in sorted(ent.items())
                ],
            }
        return {"format": FORMAT, "source_lang": self.source_lang, "rule": asdict(self.rule),
                "tokenizer": self.tokenizer_info, "languages": langs}

    def save(self, path: str | Path) -> Path:
        """Write JSON: the rule, the tokenizer, and per id its piece and both counts."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> LanguageVocabs:
        """Read a file written by ``save``; a bad file raises VocabError naming file and key."""
        path = Path(path)
        if not path.is_file():
            raise VocabError(f"{path}: no such vocabulary file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise VocabError(f"{path}: not valid JSON ({err})") from None

        try:
            doc = VocabFile.model_validate(data)
        except ValidationError as err:
            raise VocabError(f"{path}: {_validation_message(err)}") from None
        unknown = set(doc.rule) - set(VocabRule.__dataclass_fields__)
        if unknown:
            raise VocabError(f"{path}: unknown key(s) under 'rule': {sorted(unknown)}")
        try:
            rule = VocabRule(**doc.rule)
            rule.check()
        except (TypeError, VocabError) as err:
            raise VocabError(f"{path}: key 'rule': {err}") from None
        if doc.source_lang not in doc.languages:
            raise VocabError(f"{path}: key 'languages' has no entry for source language "
                             f"{doc.source_lang!r}")
        entries: dict[str, dict[int, tuple[str, int, int, int]]] = {}
        for lang, block in doc.languages.items():
            ent: dict[int, tuple[str, int, int, int]] = {}
            for k, row in enumerate(block.entries):
                if row.id in ent:
                    raise VocabError(f"{path}: key 'languages.{lang}.entries[{k}].id': "
                                     f"duplicate id {row.id}")
                ent[row.id] = (row.piece, row.count, row.count_source, row.count_whole)
            entries[lang] = ent
        return cls(source_lang=doc.source_lang, rule=rule, entries=entries,
                   tokenizer_info=dict(doc.tokenizer),
                   corpus={lang: dict(b.corpus) for lang, b in doc.languages.items()},
                   removed={lang: dict(b.removed) for lang, b in doc.languages.items()})

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Refuse a tokenizer other than the one the sets were built with (size and pieces)."""
        size = self.tokenizer_info.get("size")
        if size is not None and size != len(tokenizer):
            raise VocabError(f"vocabularies were built with a tokenizer of {size} ids; "
                             f"this one has {len(tokenizer)}")
        for lang, ent in self.entries.items():
            sample = sorted(ent)[:50]
            got = tokenizer.convert_ids_to_tokens(sample)
            for i, piece in zip(sample, got, strict=True):
                if piece != ent[i][0]:
                    raise VocabError(f"language {lang}: id {i} is {piece!r} in this tokenizer "
                                     f"but {ent[i][0]!r} in the vocabulary file")


def build_from_counts(pieces: Mapping[int, str], counts_by_lang: Mapping[str, Mapping[int, int]],
                      specials: set[int], source_lang: str = "en",
                      rule: VocabRule | None = None, scheme: PieceScheme | None = None,
                      tokenizer_info: dict[str, Any] | None = None,
                      corpus: dict[str, dict[str, int]] | None = None,
                      whole_counts_by_lang: Mapping[str, Mapping[int, int]] | None = None
                      ) -> LanguageVocabs:
    """The rule on given counts (the tokenizer-free core, testable with hand-made counts).

    Without ``whole_counts_by_lang`` every occurrence counts as a whole-word occurrence.
    """
    rule = rule or VocabRule()
    if scheme is None:
        if rule.scheme is None:
            raise VocabError("build_from_counts needs a scheme (argument or rule.scheme)")
        scheme = PieceScheme(rule.scheme)
    if source_lang not in counts_by_lang:
        raise VocabError(f"no text for the source language {source_lang!r}; "
                         f"got {sorted(counts_by_lang)}")
    wholes = whole_counts_by_lang or counts_by_lang
    src = counts_by_lang[source_lang]
    entries: dict[str, dict[int, tuple[str, int, int, int]]] = {}
    removed: dict[str, dict[str, int]] = {}
    for lang, counts in counts_by_lang.items():
        whole = wholes.get(lang, counts)
        others = {m: c for m, c in counts_by_lang.items() if m not in (lang, source_lang)}
        ids, rem = select_ids(pieces, counts, src, specials, rule, scheme,
                              exclude_source=lang != source_lang, whole_counts=whole, lang=lang,
                              other_counts=others)
        entries[lang] = {i: (pieces[i], int(counts[i]), int(src.get(i, 0)), int(whole.get(i, 0)))
                         for i in ids}
        removed[lang] = rem
    # source first, then targets in the given order
    order = [source_lang] + [lang for lang in counts_by_lang if lang != source_lang]
    return LanguageVocabs(source_lang=source_lang, rule=rule,
                          entries={lang: entries[lang] for lang in order},
                          tokenizer_info=dict(tokenizer_info or {}), corpus=dict(corpus or {}),
                          removed=removed)


def build_vocabularies(tokenizer: PreTrainedTokenizerBase,
                       texts_by_lang: Mapping[str, Sequence[str]], source_lang: str = "en",
                       **rule: Any) -> LanguageVocabs:
    """Count each language's sub-words with the model's tokenizer and apply the rule.

    ``texts_by_lang`` must hold the source language's text (for the frequency exclusion and its
    own set); keyword arguments are ``VocabRule`` fields.
    """
    unknown = set(rule) - set(VocabRule.__dataclass_fields__)
    if unknown:
        raise VocabError(f"unknown vocabulary rule parameter(s): {sorted(unknown)}; "
                         f"known: {sorted(VocabRule.__dataclass_fields__)}")
    vrule = VocabRule(**rule)
    vrule.check()
    scheme = PieceScheme(vrule.scheme) if vrule.scheme else detect_scheme(tokenizer)
    vrule = VocabRule(**{**asdict(vrule), "scheme": scheme.kind})
    counts_by_lang: dict[str, Counter[int]] = {}
    whole_by_lang: dict[str, Counter[int]] = {}
    corpus: dict[str, dict[str, int]] = {}
    for lang, texts in texts_by_lang.items():
        if not texts:
            raise VocabError(f"no text for language {lang!r}")
        counts, whole, total = count_ids(tokenizer, texts, scheme, vrule.unspaced_scripts)
        counts_by_lang[lang] = counts
        whole_by_lang[lang] = whole
        corpus[lang] = {"texts": len(texts), "tokens": total, "distinct_ids": len(counts)}
    seen = sorted(set().union(*counts_by_lang.values()))
    pieces = dict(zip(seen, tokenizer.convert_ids_to_tokens(seen), strict=True))
    # the tokenizer by name (a folder's last component), never a machine path
    info = {"name": Path(str(getattr(tokenizer, "name_or_path", ""))).name, "size": len(tokenizer),
            "class": type(tokenizer).__name__}
    return build_from_counts(pieces, counts_by_lang, special_ids(tokenizer), source_lang,
                             vrule, scheme, info, corpus, whole_by_lang)
