"""vitssl: self-supervised pre-training of Vision Transformers (SiT/GMML, RandSAC) and its evaluation."""

__version__ = "0.1.0"

from vitssl import methods  # noqa: E402,F401  (the composition root: registers the built-in methods)
