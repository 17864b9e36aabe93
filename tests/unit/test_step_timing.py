"""verl's step time measures the step: CPU runs poll the replay buffer every 0.05 s instead of verl's
fixed 2 s, and verl's agent-loop workers are ready before the first step."""

from __future__ import annotations

import asyncio
import importlib
import types

from omegaconf import OmegaConf

from radgrpo.engine import step_timing
from radgrpo.engine.runner import process_env


def _replay_buffer(module):
    return module.ReplayBuffer(trainer_mode="sync", trainer_config=OmegaConf.create({}), max_off_policy_threshold=None,
                               max_off_policy_strategy="drop", sampler_kwargs=OmegaConf.create({}))


def test_verls_replay_buffer_polls_at_the_interval_the_environment_sets(monkeypatch):
    module = importlib.import_module(step_timing.REPLAY_BUFFER_MODULE)
    monkeypatch.setattr(module.ReplayBuffer, "__init__", module.ReplayBuffer.__init__)  # restored after the test
    assert _replay_buffer(module).poll_interval == 2.0  # verl's own wait
    step_timing._set_poll_interval(module, 0.05)
    assert _replay_buffer(module).poll_interval == 0.05


def test_only_cpu_runs_shorten_the_poll():
    assert float(process_env("cpu", "qwen2_5_vl", "/m.jsonl")[step_timing.POLL_ENV]) < 2.0
    assert step_timing.POLL_ENV not in process_env("cuda", "qwen2_5_vl", "/m.jsonl")


def test_the_agent_loop_manager_waits_for_the_workers_it_creates():
    events = []

    class Worker:
        def __init__(self, name):
            ready = types.SimpleNamespace(remote=lambda: self._ready(name))
            self.__ray_ready__ = ready

        async def _ready(self, name):
            events.append(f"ready {name}")

    class AgentLoopManager:  # verl's creates the actors and returns at once
        async def _init_agent_loop_workers(self):
            self.agent_loop_workers = [Worker("w0"), Worker("w1")]
            events.append("created")

    step_timing._wait_for_agent_loop_workers(types.SimpleNamespace(AgentLoopManager=AgentLoopManager))
    asyncio.run(AgentLoopManager()._init_agent_loop_workers())
    assert events == ["created", "ready w0", "ready w1"]


def test_verls_agent_loop_manager_has_what_the_wait_wraps():
    module = importlib.import_module(step_timing.AGENT_LOOP_MODULE)
    assert asyncio.iscoroutinefunction(module.AgentLoopManager._init_agent_loop_workers)
