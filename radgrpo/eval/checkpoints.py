"""Which checkpoints of a training run to evaluate, as Hugging Face folders.

`radgrpo-export` (radgrpo.export) finds a run's checkpoints and turns one into a Hugging Face folder
(weights with LoRA merged, processor, chat template), checked against the trained actor's logits.
Evaluation asks for `latest`, `all` or a step number and gets one exported folder per step, written
once to the run's `export/global_step_N` and reused by later evaluations.
"""

from __future__ import annotations

from pathlib import Path


def exported_checkpoints(source: Path, which: str) -> list[tuple[Path, str, Path]]:
    """(run folder, step label, Hugging Face folder) per chosen checkpoint, exporting those not yet exported.

    `source` is a run folder, its `checkpoints/`, a `global_step_N` or an `actor/` folder."""
    from radgrpo.export.checkpoint import all_actor_dirs, default_output, find_actor_dir
    from radgrpo.export.write import export_checkpoint

    actors = all_actor_dirs(source) if which == "all" else [find_actor_dir(source, which)]
    out = []
    for actor in actors:
        target = default_output(actor)
        if not (target / "config.json").is_file():
            export_checkpoint(actor, target)
        step_dir = actor.parent
        out.append((run_folder_of(actor), step_dir.name, target))
    return out


def run_folder_of(actor: Path) -> Path:
    """The run folder whose `eval/` holds the evaluations of the checkpoint `actor` belongs to."""
    from radgrpo.export.checkpoint import run_dir_of

    return run_dir_of(actor) or actor.parent.parent.parent


def checkpoint_steps(cfg) -> tuple[Path | None, list[int]]:
    """The run folder and the step numbers `checkpoint=<run> step=all` names (without exporting them),
    else (None, []): what a SLURM evaluation splits into one array task per checkpoint."""
    from radgrpo.export.checkpoint import all_actor_dirs

    checkpoint = cfg.get("checkpoint")
    if not checkpoint or str(cfg.get("step", "latest")) != "all":
        return None, []
    folder = Path(str(checkpoint)).expanduser()
    if (folder / "config.json").is_file():
        return None, []
    actors = all_actor_dirs(folder)
    return run_folder_of(actors[0]), [int(actor.parent.name.rsplit("_", 1)[-1]) for actor in actors]
