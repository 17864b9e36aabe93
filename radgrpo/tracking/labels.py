"""How a run is labelled in wandb: its group (the sweep or the experiment), job type and tags.

A researcher filters a project by what was composed, so the tags are the composition itself -
`model:qwen2_5_vl_7b family:qwen2_5_vl data:vindr task:grounding reward:iou algorithm:grpo
sampling:hard size:1000 seed:2` - plus the user's `logger.tags`. The runs of one `-m` sweep share a
group named after the sweep preset and the keys it sweeps (`data_size_x_sampling: sampling x
sampling.size x seed`), not after its timestamp folder, so repeating a sweep lands in the same group;
a single run of an experiment preset is grouped under the experiment; `logger.group` overrides both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

JOB_TYPES = ("train", "difficulty", "eval")
MAX_TAG_CHARS = 64  # wandb rejects longer tags
MAX_GROUP_CHARS = 128  # wandb's limit on a group name

# (tag prefix, config key) read from the composed config; missing or null keys give no tag
COMPOSITION_TAGS = (
    ("model", "model.name"),
    ("family", "model.family"),
    ("data", "data.name"),
    ("task", "data.task"),
    ("reward", "reward.name"),
    ("algorithm", "algorithm.name"),
    ("sampling", "sampling.strategy"),
    ("size", "sampling.size"),
    ("seed", "seed"),
)


@dataclass(frozen=True)
class RunLabels:
    job_type: str
    group: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


def tag(text: object) -> str:
    """A wandb tag: no commas (WANDB_TAGS is comma-separated), at most MAX_TAG_CHARS."""
    return str(text).replace(",", ";").strip()[:MAX_TAG_CHARS]


def composition_tags(cfg: DictConfig, experiment: str | None = None) -> list[str]:
    tags = []
    for prefix, key in COMPOSITION_TAGS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            tags.append(tag(f"{prefix}:{value}"))
    if experiment:
        tags.append(tag(f"experiment:{experiment}"))
    return tags


def sweep_group(preset: str | None, swept_keys: list[str], experiment: str | None) -> str | None:
    """`<experiment>/<preset or 'sweep'>: <key> x <key>` for a sweep, the experiment for a single run."""
    if swept_keys or preset:
        name = f"{preset or 'sweep'}: {' x '.join(swept_keys)}" if swept_keys else str(preset)
        return (f"{experiment}/{name}" if experiment else name)[:MAX_GROUP_CHARS]
    return experiment


def run_labels(cfg: DictConfig, job_type: str = "train") -> RunLabels:
    """Labels for a run composed as `cfg`, reading the sweep and experiment from Hydra when it runs."""
    if job_type not in JOB_TYPES:
        raise ValueError(f"job_type must be one of {', '.join(JOB_TYPES)}, got {job_type!r}")
    preset, swept, experiment = hydra_context()
    logger = cfg.get("logger", {})
    group = logger.get("group") or sweep_group(preset, swept, experiment)
    user = [tag(t) for t in (logger.get("tags") or [])]
    tags = list(dict.fromkeys([*composition_tags(cfg, experiment), *user]))
    return RunLabels(job_type=job_type, group=str(group) if group else None, tags=tuple(tags))


def eval_labels(cfg: DictConfig, training_run: Path | None, extra_tags: tuple[str, ...] = ()) -> RunLabels:
    """An evaluation's labels (job type `eval`): `logger.group` when given; else, for a training run's
    checkpoint, that run's group (its sweep or experiment, or its own `logger.group`), or the run's
    folder name when it had none, so every evaluation of a run sits together; else the evaluation's
    own sweep or experiment."""
    labels = run_labels(cfg, "eval")
    group = labels.group
    if training_run is not None and not (cfg.get("logger") or {}).get("group"):
        config_file = Path(training_run) / "radgrpo_config.yaml"
        logger = OmegaConf.to_container(OmegaConf.load(config_file).get("logger") or {}) if config_file.exists() else {}
        group = run_folder_group(training_run, logger) or Path(training_run).name
    tags = tuple(dict.fromkeys([*labels.tags, *(tag(t) for t in extra_tags)]))
    return RunLabels(job_type="eval", group=group[:MAX_GROUP_CHARS] if group else None, tags=tags)


def hydra_context() -> tuple[str | None, list[str], str | None]:
    """(sweep preset, swept keys, experiment preset) of the running Hydra app; empty outside one."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, [], None
    return context_of(HydraConfig.get())


def context_of(hydra_cfg: DictConfig) -> tuple[str | None, list[str], str | None]:
    """(sweep preset, swept keys, experiment preset) from a Hydra config (live, or a run folder's
    `.hydra/hydra.yaml`)."""
    choices = hydra_cfg.runtime.choices
    experiment = choices.get("experiment") if choices.get("experiment") not in (None, "null") else None
    if str(hydra_cfg.mode) not in ("MULTIRUN", "RunMode.MULTIRUN"):
        return None, [], experiment
    preset = choices.get("sweep") if choices.get("sweep") not in (None, "null") else None
    return preset, swept_keys(hydra_cfg), experiment


def run_folder_group(run_dir: Path, logger: dict | None = None) -> str | None:
    """The wandb group the run in `run_dir` was given (for tools that log beside it, e.g. reports)."""
    if logger and logger.get("group"):
        return str(logger["group"])
    hydra_file = Path(run_dir) / ".hydra" / "hydra.yaml"
    if not hydra_file.exists():
        return None
    return sweep_group(*context_of(OmegaConf.load(hydra_file).hydra))


def swept_keys(hydra_cfg: DictConfig) -> list[str]:
    """The keys a multirun sweeps: the preset's `hydra.sweeper.params` and the command line's `a=x,y`
    (read from the sweep folder's multirun.yaml, which keeps the overrides before they are split)."""
    keys = [str(k) for k in (OmegaConf.select(hydra_cfg, "sweeper.params", default=None) or {})]
    multirun = Path(str(hydra_cfg.sweep.dir)) / "multirun.yaml"
    overrides = []
    if multirun.exists():
        overrides = OmegaConf.select(OmegaConf.load(multirun), "hydra.overrides.task", default=None) or []
    for override in overrides:
        key, sep, value = str(override).partition("=")
        literal = value.startswith(("[", "{", "'", '"'))
        if sep and not literal and ("," in value or value.startswith(("range(", "choice(", "glob(", "interval("))):
            keys.append(key.lstrip("+~"))
    return list(dict.fromkeys(keys))
