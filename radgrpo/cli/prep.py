"""`radgrpo-prep`: the Hydra entry point of data preparation (logic in radgrpo.prep)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from radgrpo import CONF_DIR
from radgrpo.errors import UserError
from radgrpo.prep.config import PrepConfig
from radgrpo.prep.pipeline import run


def _check_group_choices(argv: list[str]) -> None:
    """Give one clear line for an unknown `source=`/`prompt=` (Hydra's own message is a page)."""
    for arg in argv:
        group, _, choice = arg.partition("=")
        folder = CONF_DIR / group
        if group in ("source", "prompt") and not (folder / f"{choice}.yaml").exists():
            known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
            print(f"radgrpo-prep: error: unknown {group} {choice!r}; choose one of: {known}", file=sys.stderr)
            sys.exit(2)


def main() -> None:
    _check_group_choices(sys.argv[1:])
    _hydra_main()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="prep")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        run(PrepConfig.from_mapping(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)))
    except UserError as exc:
        print(f"radgrpo-prep: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
