"""`radgrpo-export`: the Hydra entry point of checkpoint export (logic in radgrpo.export).

    radgrpo-export run=<run folder>                      # newest checkpoint, LoRA merged, float32
    radgrpo-export run=<run folder> step=2 merge=false   # base weights + adapter/ for a LoRA run
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from radgrpo import CONF_DIR
from radgrpo.cli import exit_without_collecting
from radgrpo.errors import UserError


def _fail(message: str) -> None:
    print(f"radgrpo-export: error: {message}", file=sys.stderr)
    sys.exit(2)


def _progress(message: str) -> None:
    print(f"radgrpo-export: {message}", flush=True)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
def _hydra_main(cfg: DictConfig) -> None:
    from omegaconf.errors import MissingMandatoryValue

    from radgrpo.export.checkpoint import default_output, find_actor_dir
    from radgrpo.export.write import export_checkpoint

    try:
        actor_dir = find_actor_dir(Path(str(cfg.run)), cfg.step)
        output = Path(str(cfg.output)).expanduser() if cfg.output else default_output(actor_dir)
        result = export_checkpoint(
            actor_dir, output, merge=bool(cfg.merge), dtype=str(cfg.dtype),
            check_atol=float(cfg.check.atol) if cfg.check.enabled else None, overwrite=bool(cfg.overwrite),
            progress=_progress,
        )
    except MissingMandatoryValue:
        _fail("give the run to export: radgrpo-export run=<run folder>")
    except UserError as exc:
        _fail(str(exc))
    kind = ("LoRA merged" if result.merged else "base + adapter/") if result.lora else "full model"
    _progress(f"done: {result.output} ({kind})")


def main() -> None:
    exit_without_collecting()
    _hydra_main()


if __name__ == "__main__":
    main()
