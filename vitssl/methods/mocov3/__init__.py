"""MoCo v3, the momentum-contrastive baseline of SiT's table."""

from vitssl.methods.mocov3.config import MoCoV3Config
from vitssl.methods.mocov3.method import MoCoV3

__all__ = ["MoCoV3Config", "MoCoV3"]
