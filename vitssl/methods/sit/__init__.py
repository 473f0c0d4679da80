"""SiT and pure GMML."""

from vitssl.methods.sit.config import GMMLConfig, SiTConfig
from vitssl.methods.sit.corruption import gmml_corrupt, sample_masks
from vitssl.methods.sit.method import GMML, SiT

__all__ = ["GMMLConfig", "SiTConfig", "gmml_corrupt", "sample_masks", "SiT", "GMML"]
