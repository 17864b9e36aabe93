"""OmegaConf resolvers radgrpo's configs use, registered on `import radgrpo`.

`${slurm_gpus:<device>,<gpus_per_node>}` is the GPU count to ask SLURM for: none for `cluster.device=cpu`
(logical GPUs on a CPU node are training processes, and CPU partitions refuse a GPU request), else
`gpus_per_node`.

`${cwd:}` is the current working directory. Hydra's `${hydra:runtime.cwd}` would do in a single run,
but a multirun sweeper resolves `hydra.sweep.dir` before the Hydra runtime config exists
("HydraConfig was not set"), and the output root feeds that folder.

`${each:${data.dirs},train}` is `<dir>/train` for every folder of a list: the train (or val) shards of
several prepared datasets.

`${floordiv:a,b}` is a // b for sizes derived from another size (DAPO's overlong buffer is a fifth
of the response budget).
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf

OmegaConf.register_new_resolver("cwd", os.getcwd, replace=True)


def slurm_gpus(device: str, gpus_per_node: int) -> int:
    return 0 if str(device) == "cpu" else int(gpus_per_node)


OmegaConf.register_new_resolver("slurm_gpus", slurm_gpus, replace=True)


def _each(folders, sub: str) -> list[str]:
    folders = [folders] if isinstance(folders, str) else list(folders)
    return [f"{str(folder).rstrip('/')}/{sub}" for folder in folders]


OmegaConf.register_new_resolver("each", _each, replace=True)


OmegaConf.register_new_resolver("floordiv", lambda a, b: int(a) // int(b), replace=True)
