"""The MLM-head stage's entry points (interface kept for the stage code); the implementation
lives in the :mod:`salt.mlm` package."""

from salt.mlm import (
    CENTRE_MODES,
    EXCLUDED_BIAS,
    REPORT_FILE,
    RUN_TIMES,
    CentredMaskedLM,
    Centring,
    MLMHeadConfig,
    MLMHeadError,
    MLMHeadTrainer,
    bottom_states,
    fill_mask_accuracy,
    head_logits_over,
    mean_difference_basis,
    mlm_head_module,
    run_layers,
    split_held_out,
    train_mlm_head,
)

__all__ = [
    "CENTRE_MODES", "EXCLUDED_BIAS", "REPORT_FILE", "RUN_TIMES", "CentredMaskedLM", "Centring",
    "MLMHeadConfig", "MLMHeadError", "MLMHeadTrainer", "bottom_states", "fill_mask_accuracy",
    "head_logits_over", "mean_difference_basis", "mlm_head_module", "run_layers",
    "split_held_out", "train_mlm_head",
]
