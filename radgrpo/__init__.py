"""radgrpo: Hydra-composed GRPO experiments for medical vision-language models, on verl."""

__version__ = "0.1.0"

from radgrpo import config_resolvers  # noqa: E402,F401  (${cwd:} in conf/paths)
