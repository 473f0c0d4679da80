"""Recipes for the shared config sections that more than one method starts from."""

# The MAE recipe, used by the pixel-prediction methods (MAE, RandSAC): minimal augmentation
# (crop + flip), fixed sin-cos positions, AdamW betas (0.9, 0.95), no clipping. Which parameters skip
# weight decay (learned tokens, layer-mixing weights) each method declares in `no_weight_decay()`.
MAE_RECIPE = {
    "model": {"pos_embed": "sincos", "drop_path": 0.0},
    "augment": {"jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": [0.0, 0.0], "solarize_p": [0.0, 0.0]},
    "optim": {"base_lr": 1.5e-4, "betas": [0.9, 0.95], "weight_decay": 0.05, "weight_decay_end": 0.05,
              "clip_grad": 0.0},
}


def named_no_decay(module, last_names: set[str]) -> set[str]:
    """Full names of `module`'s parameters whose last name part is in `last_names`."""
    return {n for n, _ in module.named_parameters() if n.rsplit(".", 1)[-1] in last_names}


def encoder_no_decay(method) -> set[str]:
    """Full names of what the encoder itself keeps out of weight decay (timm's `no_weight_decay()`)."""
    return {f"encoder.{n}" for n in method.encoder.no_weight_decay()}
