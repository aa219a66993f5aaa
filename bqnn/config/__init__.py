"""Configuration: the schema (bqnn/config/schema.py) and how a job file and `--set` overrides are read
(bqnn/config/loading.py), under one name.

Used by every entry point and layer: `from bqnn.config import Config, load`;

    python -m bqnn.search --config jobs/demo.toml --out DIR --set trainer.epochs=2 --set data.root=/data
"""
from .loading import (
                      check,
                      check_schedule,
                      diff,
                      from_dict,
                      from_json,
                      load,
                      parse_override,
                      read_job_file,
                      to_dict,
                      to_json,
)
from .schema import (
                      MAX_INDEX,
                      MAX_RUNGS,
                      PAPER_SCHEDULE,
                      RANGES,
                      RUNTIME_KEYS,
                      SECTIONS,
                      STRATEGY_NAMES,
                      Config,
                      ConfigError,
                      DataConfig,
                      EvolutionConfig,
                      FinalTrainConfig,
                      LimitsConfig,
                      NetworkConfig,
                      PNASConfig,
                      PruningConfig,
                      Range,
                      RewardConfig,
                      SearchConfig,
                      SpaceConfig,
                      TrainerConfig,
                      TrainJobConfig,
)

__all__ = ["MAX_INDEX", "MAX_RUNGS", "PAPER_SCHEDULE", "RANGES", "RUNTIME_KEYS", "SECTIONS", "STRATEGY_NAMES",
           "Config", "ConfigError", "DataConfig", "EvolutionConfig", "FinalTrainConfig", "LimitsConfig",
           "NetworkConfig", "PNASConfig", "PruningConfig", "Range", "RewardConfig", "SearchConfig", "SpaceConfig",
           "TrainJobConfig", "TrainerConfig", "check", "check_schedule", "diff", "from_dict", "from_json", "load",
           "parse_override", "read_job_file", "to_dict", "to_json"]
