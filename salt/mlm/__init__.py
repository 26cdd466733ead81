"""Train a masked-LM head (optionally with the top encoder layers) on unlabeled target text.

Why: SALT's code-switcher asks the model's own MLM head for substitutes. The e5-small proxy has
no MLM head (and fill-mask through the tied embeddings alone is noise), so one is trained here on
monolingual text only (the dev splits' sentences, labels discarded): no dictionary, no parallel
data. Sources that already have a head (mBERT, ``tiny``) may skip training;
:func:`fill_mask_accuracy` measures any masked LM so every source reports the same figure.

How the work is bounded (counted in sentences and steps, never in seconds, so the output is
the same on any machine; the encoder forward is the cost on a 2-core CPU):

0. The encoder is cut at ``head_layer`` (default 6 of e5's 12): the head reads that layer and
   the saved masked LM keeps only those layers (cheaper to encode and to code-switch with).
1. *Encode once.* The frozen bottom ``L - k`` layers (``k = train_top_layers``) run once, under
   ``no_grad`` (bf16 where the CPU supports it), over masked copies of the training sentences,
   taken round-robin across languages so a sentence budget (``encode_sentences``) that cuts
   the list short keeps it balanced; ``mlm_head.json["budget"]`` records limit, used and
   whether it cut work short. For ``k = 0``
   only the final hidden states at masked positions are kept; for ``k > 0`` the layer-``L-k``
   states of whole sentences. Masks are static (one draw per sentence, all ``<mask>``, as the
   code-switcher uses them).
2. *Train for epochs over that cache*: head (transform + tied decoder restricted to the kept
   vocabulary, logits only at masked rows) and the top ``k`` layers, for ``max_steps``.
   With ``softmax_scope="language"`` (default) each row's softmax runs over the
   ids seen in its own language's text: what a code-switcher restricted to one language asks,
   and several times cheaper than all kept ids.

``objective="prototype"`` (not SALT's mask-and-predict; off by default): no training. One
unmasked pass stores each kept id's mean (centred) contextual state; the saved head scores an
*unmasked* token's state by cosine against every id's prototype (untied decoder), so restricted
to a target language it returns the nearest target-language ids: dictionary-free translations.
On e5-small it gave 40-51% MUSE-translation substitutions (fr/de/es) where masked heads gave
1-7%. Its inputs must not be masked (``mlm_head.json`` says ``"input": "unmasked"``).

Centring (language-neutral head input; ``centre``):

- ``"project"`` (default): remove from every hidden state its component in the span of the
  language-mean differences ``{mu_L - mean(mu)}``. Afterwards all languages share one mean, and
  the projection is one linear map that needs no language at inference, so it is folded into
  the saved head (``transform.dense.weight <- W P``): ``AutoModelForMaskedLM`` computes exactly
  what was trained, for every language.
- ``"mean"``: subtract the language's own mean. This needs the language at inference; the saved
  model has the *source* language's mean folded into ``transform.dense.bias`` (so the
  code-switcher, which masks English sentences and calls ``model.base_model`` then ``model.cls``,
  works unchanged), and :class:`CentredMaskedLM` applies the right mean for other languages.
- ``"none"``.

Modules: :mod:`~salt.mlm.config` (settings), :mod:`~salt.mlm.text` (held-out split, masking),
:mod:`~salt.mlm.vocabulary` (kept ids), :mod:`~salt.mlm.cache` (encode-once phase),
:mod:`~salt.mlm.objective` (head, loss, step data), :mod:`~salt.mlm.prototype` (prototype
head), :mod:`~salt.mlm.centring`, :mod:`~salt.mlm.layers`, :mod:`~salt.mlm.probe` (fill-mask
accuracy), :mod:`~salt.mlm.trainer` and :mod:`~salt.mlm.run` (one run, its report).

The saved folder (``save_pretrained`` layout + tokenizer) loads with
``AutoModelForMaskedLM.from_pretrained``; ids outside the kept vocabulary get decoder bias
:data:`EXCLUDED_BIAS`, so a full-vocabulary softmax never picks them. ``mlm_head.json`` holds
the config, steps, wall time, loss curve and held-out fill-mask accuracy per language (over
the full vocabulary and within the language's own ids; for a prototype head, self-recovery of
unmasked tokens).
"""

from salt.mlm.centring import CentredMaskedLM, Centring, mean_difference_basis
from salt.mlm.config import CENTRE_MODES, EXCLUDED_BIAS, REPORT_FILE, MLMHeadConfig, MLMHeadError
from salt.mlm.layers import bottom_states, head_logits_over, mlm_head_module, run_layers
from salt.mlm.probe import fill_mask_accuracy
from salt.mlm.run import RUN_TIMES, train_mlm_head
from salt.mlm.text import split_held_out
from salt.mlm.trainer import MLMHeadTrainer

__all__ = [
    "CENTRE_MODES", "EXCLUDED_BIAS", "REPORT_FILE", "RUN_TIMES", "CentredMaskedLM", "Centring",
    "MLMHeadConfig", "MLMHeadError", "MLMHeadTrainer", "bottom_states", "fill_mask_accuracy",
    "head_logits_over", "mean_difference_basis", "mlm_head_module", "run_layers",
    "split_held_out", "train_mlm_head",
]
