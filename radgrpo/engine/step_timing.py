"""verl's per-step time measures the step: no 2 s polling quantum, no worker start-up inside step 1.

- verl 0.9.1's v1 trainer waits for a step's samples by polling its replay buffer
  (`ReplayBuffer.sample` -> `_wait_for_next_poll`) every `poll_interval` seconds, fixed at 2.0 by the
  constructor's default (no config key). A GPU step generates for minutes, so the 2 s are noise; a
  tiny CPU step generates in well under a second, and `timing_s/gen` read 2.01-2.02 s at every step
  (the rollout server used 0.4 CPU-s of it: benchmarks/engine.py). When `RADGRPO_REPLAY_POLL_S` is set
  - radgrpo's engine sets it for CPU runs (radgrpo.engine.runner.process_env) - the replay buffer
  polls at that interval instead; each poll is one TransferQueue key listing.
- `AgentLoopManager` creates its agent-loop worker actors without waiting for them, so the first
  step's `generate_sequences` waited for a fresh Python process to import verl (5.4-5.8 CPU-s of the
  first step's 8.6-9.0 s on CPU). The manager now waits for its workers when it creates them: the
  same wait, counted as start-up, where it belongs (nothing runs beside it either way: the trainer
  calls `generate_sequences` next).
"""

from __future__ import annotations

import os

from radgrpo.engine.after_import import when_imported

POLL_ENV = "RADGRPO_REPLAY_POLL_S"
REPLAY_BUFFER_MODULE = "verl.trainer.ppo.v1.replay_buffer"
AGENT_LOOP_MODULE = "verl.experimental.agent_loop.agent_loop"


def _set_poll_interval(replay_buffer_module, seconds: float) -> None:
    cls = replay_buffer_module.ReplayBuffer
    original = cls.__init__
    if getattr(original, "radgrpo_poll", None) is not None:
        return

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.poll_interval = seconds

    __init__.radgrpo_poll = seconds
    cls.__init__ = __init__


def _wait_for_agent_loop_workers(agent_loop_module) -> None:
    cls = agent_loop_module.AgentLoopManager
    original = cls._init_agent_loop_workers
    if getattr(original, "radgrpo_waits", False):
        return

    async def _init_agent_loop_workers(self):
        await original(self)
        for worker in self.agent_loop_workers:
            await worker.__ray_ready__.remote()

    _init_agent_loop_workers.radgrpo_waits = True
    cls._init_agent_loop_workers = _init_agent_loop_workers


def install() -> None:
    """Agent-loop workers are waited for in every process; the poll is shortened once the environment
    asks for it (see install_poll_interval)."""
    when_imported(AGENT_LOOP_MODULE, _wait_for_agent_loop_workers)


def install_poll_interval() -> bool:
    """Patch verl's replay buffer when it is first imported, if this process's environment asks;
    returns whether it asked."""
    value = os.environ.get(POLL_ENV)
    if not value:
        return False
    seconds = float(value)
    when_imported(REPLAY_BUFFER_MODULE, lambda module: _set_poll_interval(module, seconds))
    return True
