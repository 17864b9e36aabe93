"""CPU runs poll verl's replay buffer for finished rollouts every 0.05 s instead of verl's fixed 2 s."""

from __future__ import annotations

import importlib

from omegaconf import OmegaConf

from radgrpo.engine import replay_poll
from radgrpo.engine.runner import process_env


def _replay_buffer(module):
    return module.ReplayBuffer(trainer_mode="sync", trainer_config=OmegaConf.create({}), max_off_policy_threshold=None,
                               max_off_policy_strategy="drop", sampler_kwargs=OmegaConf.create({}))


def test_verls_replay_buffer_polls_at_the_interval_the_environment_sets(monkeypatch):
    module = importlib.import_module(replay_poll.REPLAY_BUFFER_MODULE)
    monkeypatch.setattr(module.ReplayBuffer, "__init__", module.ReplayBuffer.__init__)  # restored after the test
    assert _replay_buffer(module).poll_interval == 2.0  # verl's own wait
    replay_poll._set_poll_interval(module, 0.05)
    assert _replay_buffer(module).poll_interval == 0.05


def test_only_cpu_runs_shorten_the_poll():
    assert float(process_env("cpu", "qwen2_5_vl", "/m.jsonl")[replay_poll.POLL_ENV]) < 2.0
    assert replay_poll.POLL_ENV not in process_env("cuda", "qwen2_5_vl", "/m.jsonl")
