"""Encoders and the heads methods put on them."""

from vitssl.models.heads import PixelHead, ProjectionHead
from vitssl.models.patches import patchify, unpatchify
from vitssl.models.vit import PRESETS, VisionTransformer, build_vit, encoder_from_config

__all__ = ["PixelHead", "ProjectionHead", "patchify", "unpatchify", "PRESETS", "VisionTransformer", "build_vit",
           "encoder_from_config"]
