"""OmegaConf resolvers radgrpo's configs use, registered on `import radgrpo`.

`${cwd:}` is the current working directory. Hydra's `${hydra:runtime.cwd}` would do in a single run,
but a multirun sweeper resolves `hydra.sweep.dir` before the Hydra runtime config exists
("HydraConfig was not set"), and the output root feeds that folder.

`${floordiv:a,b}` is a // b for sizes derived from another size (DAPO's overlong buffer is a fifth
of the response budget).
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf

OmegaConf.register_new_resolver("cwd", os.getcwd, replace=True)
OmegaConf.register_new_resolver("floordiv", lambda a, b: int(a) // int(b), replace=True)
