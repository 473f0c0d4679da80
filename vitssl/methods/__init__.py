"""Pre-training methods, each in its own folder; none imports another. What a method is: base.py."""

from vitssl.methods import registry
from vitssl.methods.dino import DINO
from vitssl.methods.mae import MAE
from vitssl.methods.mocov3 import MoCoV3
from vitssl.methods.randsac import RandSAC
from vitssl.methods.sit import GMML, SiT

for _cls in (SiT, GMML, RandSAC, MAE, MoCoV3, DINO):
    registry.register(_cls)
