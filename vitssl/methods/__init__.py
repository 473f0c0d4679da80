"""Pre-training methods, each in its own package; none imports another."""

from vitssl.methods import mae, randsac, registry, sit
from vitssl.methods.registry import MethodSpec

registry.register(MethodSpec("sit", sit.SiTConfig, sit.build,
                             "SiT: GMML reconstruction + momentum contrastive learning"))
registry.register(MethodSpec("gmml", sit.GMMLConfig, sit.build, "pure GMML: group-masked reconstruction only",
                             defaults={"optim": {"weight_decay_end": 0.4}}))  # the GMML repository's recipe
registry.register(MethodSpec("randsac", randsac.RandSACConfig, randsac.build,
                             "RandSAC: autoregressive prediction of randomly ordered, hierarchical segments",
                             defaults=randsac.DEFAULTS))
registry.register(MethodSpec("mae", mae.MAEConfig, mae.build, "MAE baseline: masked-autoencoder pixel reconstruction",
                             defaults=mae.DEFAULTS))
