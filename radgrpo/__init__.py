"""radgrpo: Hydra-composed GRPO experiments for medical vision-language models, on verl."""

__version__ = "0.1.0"
