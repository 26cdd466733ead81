"""Offline code-switching by the model's own MLM head (SALT's first self-augmentation).

Definition (``code_switch_reference``): for every candidate position of an English pair, run one
forward pass with only that position replaced by the mask token; restrict the MLM logits at that
position to the target language's sub-word set (``salt.vocab``); if the arg-max's probability
(renormalised over the set, or the full-vocabulary softmax restricted: ``normalize``) is at least
``threshold``, substitute it. At most ``max_ratio`` of a pair's candidates are switched, highest
probability first. No dictionary and no parallel text are used.

Fast path (``code_switch``): the same substitutions, computed by batching many single-masked
copies (one per candidate, across sentences) into one forward pass of the encoder only, gathering
the hidden states at the masked positions and applying the MLM head to those rows alone, with the
decoder restricted to the target ids: (M, H) @ (H, |V_L|). The hidden state of a masked position
does not depend on the target language, so one pass serves every language an example is switched
into. ``multi_mask_stride=k`` is an explicit approximation that masks candidates k apart together.

Input mode (``CodeSwitchConfig.input``): "masked" is the definition above. "unmasked" serves a head
that reads a token's own contextual state (``salt.mlm`` ``objective="prototype"``, whose
``mlm_head.json`` says ``"input": "unmasked"``; see ``input_mode_for``): no mask token, the head is
applied at every candidate's hidden state of the unmodified sentence. Everything after the head
(target restriction, normalisation, threshold, max_ratio, synonyms, records) is the same. The
reference then runs one full forward per (sentence, candidate), the fast path one encoder pass
per sentence with the head at the gathered candidate rows.

Output: one self-describing record per (example, copy); see ``code_switch``. Evaluation-only
statistics (``codeswitch_stats``) are the only code here that reads a bilingual dictionary.

Modules: ``config`` (settings, :class:`Substitution`, errors), ``planning`` (candidates,
copies), ``scorer`` (split masked LM), ``assemble`` (context, threshold and cap), ``reference``
and ``fast`` (the two paths), ``switch`` (resumable output), ``records`` (JSONL), ``stats``.
"""

from salt.codeswitch.config import (
    ASSIGNMENT,
    CANDIDATE,
    INPUT,
    NORMALIZE,
    RECORD_FORMAT,
    RECORD_KEYS,
    SYNONYM_TAG,
    CodeSwitchConfig,
    CodeSwitchError,
    StalePartialOutput,
    Substitution,
)
from salt.codeswitch.planning import (
    candidate_positions,
    mask_groups,
    plan_copies,
)
from salt.codeswitch.records import (
    iter_jsonl,
    read_jsonl,
    write_jsonl,
)
from salt.codeswitch.reference import (
    code_switch_reference,
)
from salt.codeswitch.scorer import (
    MaskedLMScorer,
    restricted_probs,
)
from salt.codeswitch.stats import (
    ARMS,
    arm_name,
    codeswitch_stats,
    read_muse,
)
from salt.codeswitch.switch import (
    code_switch,
    input_mode_for,
    meta_path,
    part_path,
)

__all__ = [
    "ARMS",
    "ASSIGNMENT",
    "CANDIDATE",
    "INPUT",
    "NORMALIZE",
    "RECORD_FORMAT",
    "RECORD_KEYS",
    "SYNONYM_TAG",
    "CodeSwitchConfig",
    "CodeSwitchError",
    "MaskedLMScorer",
    "StalePartialOutput",
    "Substitution",
    "arm_name",
    "candidate_positions",
    "code_switch",
    "code_switch_reference",
    "codeswitch_stats",
    "input_mode_for",
    "iter_jsonl",
    "mask_groups",
    "meta_path",
    "part_path",
    "plan_copies",
    "read_jsonl",
    "read_muse",
    "restricted_probs",
    "write_jsonl",
]
