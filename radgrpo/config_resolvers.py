"""OmegaConf resolvers radgrpo's configs use, registered on `import radgrpo`.

`${cwd:}` is the current working directory. Hydra's `${hydra:runtime.cwd}` would do in a single run,
but a multirun sweeper resolves `hydra.sweep.dir` before the Hydra runtime config exists
("HydraConfig was not set"), and the output root feeds that folder.

`${each:${data.dirs},train}` is `<dir>/train` for every folder of a list: the train (or val) shards of
several prepared datasets.
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf

OmegaConf.register_new_resolver("cwd", os.getcwd, replace=True)


def _each(folders, sub: str) -> list[str]:
    folders = [folders] if isinstance(folders, str) else list(folders)
    return [f"{str(folder).rstrip('/')}/{sub}" for folder in folders]


OmegaConf.register_new_resolver("each", _each, replace=True)
