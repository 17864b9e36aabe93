"""The one place that decides what a secret is and removes it: run-folder files, wandb, logs.

A secret is a value whose key (an environment variable or a config key, at any depth) is named like
one: its last word is `token`, `secret`, `password`/`passwd` or `credential(s)`, or it ends in
`api_key`/`apikey`/`access_key`/`secret_key`/`private_key` - `WANDB_API_KEY`, `HF_TOKEN`,
`RADGRPO_REWARD_TOKEN`, `reward.server.token`, `judge.api_key`. `max_tokens`, `pad_token_id` or
`tokenizer` are not secrets. Empty values and `null` are not secrets (nothing to hide).

Two ways out, both needed:
- `redact_config` replaces secret values in a config (dict / list / OmegaConf) by `REDACTED`,
  for the configs radgrpo writes and the config wandb receives;
- `redact_text` replaces the secret *values* (collected by `secret_values` from the environment
  and the config) wherever they occur in text: Hydra's own files, console output, logs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

REDACTED = "<redacted>"

_LAST_WORDS = {"token", "secret", "password", "passwd", "credential", "credentials"}
_SUFFIXES = ("api_key", "apikey", "access_key", "secret_key", "private_key")
# values shorter than this are not searched for in text: "1" or "true" would redact everything
MIN_SECRET_CHARS = 6


def is_secret_name(name: Any) -> bool:
    """True when a key named `name` holds a secret (see the module docstring)."""
    key = str(name).lower().rsplit(".", 1)[-1].replace("-", "_")
    words = [w for w in key.split("_") if w]
    return bool(words) and (words[-1] in _LAST_WORDS or key.endswith(_SUFFIXES))


def _is_hidden(value: Any) -> bool:
    return value is not None and value != "" and value != REDACTED


def redact_config(config: Any, values: Iterable[str] = ()) -> Any:
    """A plain copy of `config` (dict, list, OmegaConf container) with every secret-named value
    REDACTED and every occurrence of the secret `values` in its strings replaced."""
    values = sorted(set(values), key=len, reverse=True)
    if hasattr(config, "_metadata") and hasattr(config, "_get_node"):  # OmegaConf container
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(config, resolve=False)
    return _redact(config, values)


def _redact(config: Any, values: list[str]) -> Any:
    if isinstance(config, Mapping):
        return {k: (REDACTED if is_secret_name(k) and _is_hidden(v) and not isinstance(v, (Mapping, list))
                    else _redact(v, values)) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [_redact(v, values) for v in config]
    if isinstance(config, str) and values:
        return redact_text(config, values)
    return config


def secret_values(config: Any = None, environ: Mapping[str, str] | None = None) -> set[str]:
    """The secret values to scrub from text: secret-named environment variables and config leaves."""
    environ = os.environ if environ is None else environ
    values = {str(v) for k, v in environ.items() if is_secret_name(k) and _is_hidden(v)}
    if config is not None:
        if hasattr(config, "_metadata"):
            from omegaconf import OmegaConf

            config = OmegaConf.to_container(config, resolve=False)
        values.update(_config_secrets(config))
    return {v for v in values if len(v) >= MIN_SECRET_CHARS}


def _config_secrets(config: Any) -> Iterable[str]:
    if isinstance(config, Mapping):
        for key, value in config.items():
            if is_secret_name(key) and _is_hidden(value) and not isinstance(value, (Mapping, list)):
                yield str(value)
            else:
                yield from _config_secrets(value)
    elif isinstance(config, (list, tuple)):
        for value in config:
            yield from _config_secrets(value)


def redact_text(text: str, values: Iterable[str]) -> str:
    """`text` with every occurrence of each secret value replaced by REDACTED (longest first)."""
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_files(paths: Iterable[Path], values: Iterable[str]) -> list[Path]:
    """Rewrite the text files among `paths` that hold a secret value; returns the rewritten ones."""
    values = list(values)
    changed = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError):
            continue
        clean = redact_text(text, values)
        if clean != text:
            Path(path).write_text(clean)
            changed.append(Path(path))
    return changed


class RedactingStream:
    """A text stream wrapper that scrubs secret values from everything written through it.

    Installed on this process's stdout/stderr by `scrub_console` for a run, so that configs printed by
    verl (its trainer prints the whole config) and forwarded by Ray reach the terminal and the
    SLURM log files without the secrets. A secret split across two write() calls is not caught;
    Python's print and Ray's log forwarding write whole lines.

    Code that captures a stream by replacing its `write` (wandb's console capture does
    `sys.stdout.write = write_with_callbacks` when it is first imported, which in verl's trainer is
    after the run started) receives the text already redacted: `write` is a property whose setter
    keeps the replacement behind the redaction instead of in front of it.
    """

    def __init__(self, stream, values: Iterable[str]):
        self._stream = stream
        self._values = sorted(set(values), key=len, reverse=True)
        self._replacement = None

    def _redact(self, text):
        return redact_text(text, self._values) if isinstance(text, str) else text

    def _write_through(self, text):
        return self._stream.write(self._redact(text))

    @property
    def write(self):
        if self._replacement is None:
            return self._write_through
        return lambda text: self._replacement(self._redact(text))

    @write.setter
    def write(self, replacement):
        self._replacement = None if replacement == self._write_through else replacement

    def __getattr__(self, name):
        return getattr(self._stream, name)


def scrub_console(values: Iterable[str]) -> None:
    """Wrap sys.stdout and sys.stderr in RedactingStreams for `values` (no-op when there are none)."""
    values = set(values)
    if not values:
        return
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, RedactingStream):
            values |= set(stream._values)
            stream = stream._stream
        setattr(sys, name, RedactingStream(stream, values))


def scrub_argv(values: Iterable[str]) -> None:
    """Redact the secret `values` in this process's `sys.argv` (after Hydra parsed it): wandb records
    the command line of the process that runs verl's trainer - this one - in the run's metadata."""
    sys.argv[:] = [redact_text(arg, values) for arg in sys.argv]
