"""DINO, the self-distillation baseline of both papers' tables."""

from vitssl.methods.dino.config import DINOConfig
from vitssl.methods.dino.head import DINOHead
from vitssl.methods.dino.method import DINO

__all__ = ["DINOConfig", "DINOHead", "DINO"]
