"""Settings, record constants and error types of code-switching."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

from salt.vocab import LanguageVocabs

RECORD_FORMAT = "salt-codeswitch/1"
SYNONYM_TAG = "en-syn"
RECORD_KEYS = ("uid", "copy", "lang", "input_ids", "cs_input_ids", "token_type_ids", "label",
               "candidates", "substitutions")
NORMALIZE = ("target", "full")
ASSIGNMENT = ("round_robin", "each")
CANDIDATE = ("single_word", "word_start", "any")
INPUT = ("masked", "unmasked")


class Substitution(NamedTuple):
    """One switched token. Written to JSONL as the list ``[position, original_id, new_id,
    probability, tag]`` (the on-disk format is unchanged); a tuple, so ``s[0]`` still works."""

    position: int
    original_id: int
    new_id: int
    probability: float
    tag: str  # the target language, or SYNONYM_TAG for a source-language synonym


class CodeSwitchError(ValueError):
    """Bad configuration, input or output file; the message names what and where."""


class StalePartialOutput(CodeSwitchError):
    """A partial records file written with different inputs or settings (its sidecar differs):
    the caller may discard it and start afresh, which it may not do for other errors."""


@dataclass(frozen=True)
class CodeSwitchConfig:
    """Parameters of offline code-switching; every one is recorded next to the output.

    threshold: probability the arg-max substitute needs (>= threshold); above 1 disables.
    normalize: "full" (default) = the full-vocabulary softmax restricted to the target set: the
        model's own probability of the substitute, so a small set does not pass the threshold
        merely by being small; "target" = softmax renormalised over the target set's logits.
        Each record keeps the renormalised probability beside every substitution either way.
    languages: target languages; empty = every target language of the vocabularies.
    assignment: "round_robin" (copy c of example i goes to languages[(i + c) % n]) or "each"
        (one copy per language; ``copies`` must then be 1).
    copies: copies per example under round_robin.
    max_ratio: at most floor(max_ratio * #candidates) positions switched per pair, highest
        probability first (ties: earlier position).
    candidate: which positions may change. Never special tokens or digit/punctuation pieces;
        "single_word" (default) = a word-start piece whose next piece is not a continuation,
        "word_start" = any word-start piece, "any" = any other piece.
    synonyms / synonym_threshold: optional source-language synonym substitution (the seed's
        unverified C5): at a candidate without a target substitute, the arg-max over the source
        set excluding the original id, normalised like the target, substituted when >=
        synonym_threshold; tagged "en-syn". Off by default.
    batch_size: sequences per forward pass (fast path): masked copies, or sentences when
        ``input="unmasked"``.
    seed: recorded for provenance and used to seed torch; the procedure itself is deterministic.
    multi_mask_stride: None = exact (one masked position per copy); k = approximation masking
        the candidates p with equal p % k together in one copy.
    input: "masked" (the definition: one masked candidate per pass) or "unmasked" (no mask
        token: the head reads each candidate's state in the unmodified sentence; for heads
        trained that way, see ``input_mode_for``). ``multi_mask_stride`` needs "masked".
    """

    threshold: float = 0.3
    normalize: str = "full"
    languages: tuple[str, ...] = ()
    assignment: str = "round_robin"
    copies: int = 1
    max_ratio: float = 0.5
    candidate: str = "single_word"
    synonyms: bool = False
    synonym_threshold: float = 0.5
    batch_size: int = 64
    seed: int = 0
    multi_mask_stride: int | None = None
    input: str = "masked"

    def check(self) -> None:
        if math.isnan(self.threshold) or math.isnan(self.synonym_threshold):
            raise CodeSwitchError("threshold / synonym_threshold: must be numbers, got NaN")
        if self.normalize not in NORMALIZE:
            raise CodeSwitchError(f"normalize: {self.normalize!r}; use one of {NORMALIZE}")
        if self.assignment not in ASSIGNMENT:
            raise CodeSwitchError(f"assignment: {self.assignment!r}; use one of {ASSIGNMENT}")
        if self.candidate not in CANDIDATE:
            raise CodeSwitchError(f"candidate: {self.candidate!r}; use one of {CANDIDATE}")
        if self.copies < 1:
            raise CodeSwitchError(f"copies: must be >= 1, got {self.copies}")
        if self.assignment == "each" and self.copies != 1:
            raise CodeSwitchError("copies: must be 1 with assignment='each' (one copy per language)")
        if not 0.0 <= self.max_ratio <= 1.0:
            raise CodeSwitchError(f"max_ratio: must be in [0, 1], got {self.max_ratio}")
        if self.batch_size < 1:
            raise CodeSwitchError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.multi_mask_stride is not None and self.multi_mask_stride < 1:
            raise CodeSwitchError(f"multi_mask_stride: must be >= 1 or None, "
                                  f"got {self.multi_mask_stride}")
        if self.input not in INPUT:
            raise CodeSwitchError(f"input: {self.input!r}; use one of {INPUT}")
        if self.input == "unmasked" and self.multi_mask_stride is not None:
            raise CodeSwitchError("multi_mask_stride: approximates masked input; it must be None "
                                  "with input='unmasked'")
        if len(set(self.languages)) != len(self.languages):
            raise CodeSwitchError(f"languages: duplicates in {list(self.languages)}")

    def resolved(self, vocabs: LanguageVocabs) -> CodeSwitchConfig:
        """Checked copy with ``languages`` filled in and validated against the vocabularies."""
        self.check()
        langs = tuple(self.languages) or vocabs.languages
        if not langs:
            raise CodeSwitchError("languages: the vocabularies have no target language")
        for lang in langs:
            if lang not in vocabs.languages:
                raise CodeSwitchError(f"languages: no target vocabulary for {lang!r}; "
                                      f"have {list(vocabs.languages)}")
        return CodeSwitchConfig(**{**asdict(self), "languages": tuple(langs)})
