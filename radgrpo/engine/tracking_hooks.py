"""radgrpo's hooks into verl's tracking, in the process that runs verl's trainer.

verl's `Tracking` calls `wandb.init(project, name, config=<verl's config>)`; name, group, job type,
tags, run id and resume come from the environment radgrpo.tracking sets. Two things need code:
- the config: `Tracking.__init__` is wrapped so every backend receives verl's config with secrets
  removed (radgrpo.tracking.secrets) plus, under `radgrpo`, the composed radgrpo config (its groups
  as nested keys: `radgrpo.model.name`, `radgrpo.sampling.size`), read from the run folder's
  radgrpo_config.yaml (already redacted) named by $RADGRPO_WANDB_CONFIG;
- the generations table: verl's own validation table holds only (input, output, score). verl dumps
  each validation's samples with ground truth and every reward component through
  `PPOTrainer._dump_generations` (radgrpo sets `trainer.validation_data_dir`); the wrap logs those
  samples as a wandb table (radgrpo.tracking.generations) when wandb is one of the backends.
Installed by radgrpo's verl plugin through radgrpo.engine.after_import.
"""

from __future__ import annotations

import os

from radgrpo.engine.after_import import when_imported

TRACKING_MODULE = "verl.utils.tracking"
TRAINER_MODULE = "verl.trainer.ppo.v1.trainer_base"


def tracking_config(config, radgrpo_config_file: str | None):
    """The config verl's Tracking should log: verl's, redacted, plus the radgrpo groups."""
    import yaml

    from radgrpo.tracking.secrets import redact_config, secret_values

    if config is None:
        return None
    redacted = redact_config(config, secret_values())
    if radgrpo_config_file and os.path.exists(radgrpo_config_file):
        with open(radgrpo_config_file) as f:
            redacted["radgrpo"] = redact_config(yaml.safe_load(f) or {}, secret_values())
    return redacted


def _wrap_tracking(tracking_module) -> None:
    from radgrpo.tracking import CONFIG_FILE_ENV

    cls = tracking_module.Tracking
    original = cls.__init__
    if getattr(original, "radgrpo_config", False):
        return

    def __init__(self, project_name, experiment_name, default_backend="console", config=None):
        config = tracking_config(config, os.environ.get(CONFIG_FILE_ENV))
        original(self, project_name, experiment_name, default_backend=default_backend, config=config)

    __init__.radgrpo_config = True
    cls.__init__ = __init__


def log_generations_table(trainer, inputs, outputs, gts, scores, reward_extra_infos_dict) -> None:
    """Log one validation's samples as `val/generations` at the trainer's step, if wandb is on."""
    from radgrpo.tracking import GENERATIONS_ROWS_ENV, UPLOAD_IMAGES_ENV
    from radgrpo.tracking.generations import TABLE_KEY, ImageIndex, generation_rows, generations_table

    tracking = getattr(trainer, "logger", None)
    if tracking is None or "wandb" not in getattr(tracking, "logger", {}):
        return
    import wandb

    if wandb.run is None:
        return
    columns, rows = generation_rows(inputs, outputs, gts, scores, reward_extra_infos_dict,
                                    max_rows=int(os.environ.get(GENERATIONS_ROWS_ENV, "64")))
    images = None
    if os.environ.get(UPLOAD_IMAGES_ENV) == "1":
        images = getattr(trainer, "_radgrpo_image_index", None)
        if images is None:
            images = trainer._radgrpo_image_index = ImageIndex(list(trainer.config.data.val_files))
    wandb.log({TABLE_KEY: generations_table(wandb, columns, rows, images)}, step=trainer.global_steps)


def _wrap_dump_generations(trainer_base) -> None:
    cls = trainer_base.PPOTrainer
    original = cls._dump_generations
    if getattr(original, "radgrpo_table", False):
        return

    def _dump_generations(self, inputs, outputs, gts, scores, reward_extra_infos_dict, dump_path):
        original(self, inputs, outputs, gts, scores, reward_extra_infos_dict, dump_path)
        if dump_path and dump_path == self.config.trainer.get("validation_data_dir"):
            log_generations_table(self, inputs, outputs, gts, scores, reward_extra_infos_dict)

    _dump_generations.radgrpo_table = True
    cls._dump_generations = _dump_generations


def install() -> None:
    when_imported(TRACKING_MODULE, _wrap_tracking)
    when_imported(TRAINER_MODULE, _wrap_dump_generations)
