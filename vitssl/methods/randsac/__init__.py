"""RandSAC: autoregressive prediction over randomly ordered, hierarchical segments."""

from vitssl.methods.randsac.config import RandSACConfig
from vitssl.methods.randsac.method import RandSAC, build
from vitssl.methods.randsac.segments import BlobSegmenter, Segmentation, SquareSegmenter
from vitssl.methods.randsac.serialise import Serial, serialise

# shared sections whose defaults differ for RandSAC: minimal augmentation and MAE's optimiser recipe
DEFAULTS = {
    "model": {"pos_embed": "sincos", "drop_path": 0.0},
    "augment": {"jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": [0.0, 0.0], "solarize_p": [0.0, 0.0]},
    "optim": {"base_lr": 1.5e-4, "betas": [0.9, 0.95], "weight_decay": 0.05, "weight_decay_end": 0.05,
              "clip_grad": 0.0},
}

__all__ = ["RandSACConfig", "RandSAC", "build", "BlobSegmenter", "Segmentation", "SquareSegmenter", "Serial",
           "serialise", "DEFAULTS"]
