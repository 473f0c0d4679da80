"""RandSAC: autoregressive prediction over randomly ordered, hierarchical segments."""

from vitssl.methods.randsac.config import RandSACConfig
from vitssl.methods.randsac.method import RandSAC
from vitssl.methods.randsac.segments import BlobSegmenter, Segmentation, SquareSegmenter
from vitssl.methods.randsac.serialise import Serial, serialise

__all__ = ["RandSACConfig", "RandSAC", "BlobSegmenter", "Segmentation", "SquareSegmenter", "Serial", "serialise"]
