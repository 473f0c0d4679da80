"""RandSAC: autoregressive prediction over randomly ordered, hierarchical segments."""

from vitssl.methods.base import MAE_RECIPE as DEFAULTS  # shared-section defaults: the MAE recipe
from vitssl.methods.randsac.config import RandSACConfig
from vitssl.methods.randsac.method import RandSAC, build
from vitssl.methods.randsac.segments import BlobSegmenter, Segmentation, SquareSegmenter
from vitssl.methods.randsac.serialise import Serial, serialise

__all__ = ["RandSACConfig", "RandSAC", "build", "BlobSegmenter", "Segmentation", "SquareSegmenter", "Serial",
           "serialise", "DEFAULTS"]
