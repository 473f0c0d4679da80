"""vitssl: self-supervised pre-training of Vision Transformers (SiT/GMML, RandSAC) and its evaluation."""

__version__ = "0.1.0"
