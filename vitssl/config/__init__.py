"""Typed, strictly validated configuration: YAML files plus dotted command-line overrides."""

from vitssl.config.load import (
           apply_overrides,
           build_config,
           config_to_dict,
           load_config,
           read_yaml,
           save_config,
)
from vitssl.config.schema import require
from vitssl.config.sections import (
           AugmentConfig,
           Config,
           DataConfig,
           LogConfig,
           ModelConfig,
           OptimConfig,
           TrainConfig,
)

__all__ = ["apply_overrides", "build_config", "config_to_dict", "load_config", "read_yaml", "save_config", "require",
           "AugmentConfig", "Config", "DataConfig", "LogConfig", "ModelConfig", "OptimConfig", "TrainConfig"]
