"""MAE, the masked-autoencoder baseline."""

from vitssl.methods.mae.config import MAEConfig
from vitssl.methods.mae.method import MAE

__all__ = ["MAEConfig", "MAE"]
