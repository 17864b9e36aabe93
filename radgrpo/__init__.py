"""radgrpo: Hydra-composed GRPO experiments for medical vision-language models, on verl."""

from pathlib import Path

__version__ = "0.1.0"

# The config groups (Hydra's config dir). In a checkout radgrpo/conf links to the top-level conf/; a
# wheel installs them as radgrpo/conf. Either way they sit beside the package's modules.
CONF_DIR = Path(__file__).parent / "conf"

from radgrpo import config_resolvers  # noqa: E402,F401  (${cwd:} in conf/paths)
