"""`radgrpo-eval`: evaluate a base model, a Hugging Face folder or a run's checkpoints on a suite.

    radgrpo-eval                                           # base tiny model, synthetic grounding val
    radgrpo-eval checkpoint=outputs/runs/<day>/<run> step=all
    radgrpo-eval model=qwen2_5_vl_7b suite=radvlm_grounding suite.root=/data/prepared cluster=slurm
    radgrpo-eval checkpoint=<run> step=all cluster=slurm          # a SLURM job array: a task per checkpoint
    radgrpo-eval -m checkpoint=<run> step=2,4 suite=a,b cluster=slurm   # (checkpoint x suite) array (Hydra)

The work is in radgrpo.eval.evaluate; this entry point only composes and reports errors in one line.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from radgrpo import CONF_DIR
from radgrpo.cli import exit_without_collecting
from radgrpo.cli.train import unknown_group_option


def _fail(message: str) -> None:
    print(f"radgrpo-eval: error: {message}", file=sys.stderr)
    sys.exit(2)


def evaluate_here(cfg: DictConfig, _extra: list | None = None) -> dict:
    """What a local run or a SLURM job executes (the signature radgrpo.cluster.launch expects)."""
    from radgrpo.eval.evaluate import run_eval

    return {"metrics": run_eval(cfg)}


@hydra.main(config_path=str(CONF_DIR), config_name="eval", version_base="1.3")
def evaluate(cfg: DictConfig) -> None:
    from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

    from radgrpo.cluster import inside_slurm_job, launch
    from radgrpo.errors import UserError
    from radgrpo.eval.checkpoints import checkpoint_steps
    from radgrpo.eval.evaluate import evaluate_as_array

    try:
        run_dir, steps = (checkpoint_steps(cfg) if cfg.cluster.name != "local" and not inside_slurm_job()
                          else (None, []))
        if len(steps) > 1:  # one array task per checkpoint
            evaluate_as_array(cfg, run_dir, steps, evaluate_here)
        else:
            launch(cfg, evaluate_here)
    except (MissingMandatoryValue, InterpolationToMissingValueError) as exc:
        _fail(str(exc).splitlines()[0] + " (set it on the command line)")
    except UserError as exc:
        _fail(str(exc))


def main() -> None:
    exit_without_collecting()
    problem = unknown_group_option(sys.argv[1:], CONF_DIR)
    if problem:
        _fail(problem)
    evaluate()


if __name__ == "__main__":
    main()
