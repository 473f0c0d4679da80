"""MAE, the masked-autoencoder baseline."""

from vitssl.methods.base import MAE_RECIPE as DEFAULTS  # shared-section defaults: the MAE recipe
from vitssl.methods.mae.config import MAEConfig
from vitssl.methods.mae.method import MAE, build

__all__ = ["MAEConfig", "MAE", "build", "DEFAULTS"]
