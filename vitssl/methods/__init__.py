"""Pre-training methods, each in its own package; none imports another."""

from vitssl.methods import registry, sit
from vitssl.methods.registry import MethodSpec

registry.register(MethodSpec("sit", sit.SiTConfig, sit.build,
                             "SiT: GMML reconstruction + momentum contrastive learning"))
registry.register(MethodSpec("gmml", sit.GMMLConfig, sit.build, "pure GMML: group-masked reconstruction only"))
