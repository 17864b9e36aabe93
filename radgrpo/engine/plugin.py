"""radgrpo's verl plugin, loaded by `import verl` in every process (entry point group `verl.plugins`).

What it does depends on the process's environment, so one installed package serves CPU machines and
GPU clusters alike:
- always: adds each reward component's batch mean to the step metrics (radgrpo.engine.reward_metrics),
  gives verl's tracking the redacted radgrpo + verl config and a generations table
  (radgrpo.engine.tracking_hooks),
  applies radgrpo's workarounds for verl bugs (radgrpo.engine.verl_fixes), adds what verl's LoRA/freezing
  lacks (radgrpo.engine.trainable), waits for verl's agent-loop workers before the first step
  (radgrpo.engine.step_timing), registers the `hf` rollout
  name (used only when `actor_rollout_ref.rollout.name=hf`) and makes AutoProcessor build
  torchvision-free processors when torchvision is absent;
- `RADGRPO_MODEL_FAMILY` (set by radgrpo's engine from `model.family`): the model family's verl
  adaptations (radgrpo.engine.family_hooks), and the vision trace when RADGRPO_TRACE_VISION is set;
- `VERL_PLATFORM=cpu` (set by radgrpo's engine for `cluster.device=cpu`, forwarded to every Ray
  process): makes the CPU platform verl's platform.
On a GPU node with the vllm rollout nothing here changes verl's behaviour.

Every hook into a verl or transformers module that `import verl` does not load itself is installed
when that module is first imported (radgrpo.engine.after_import), so each Ray process imports only
what its own role needs: importing them all up front cost every verl process ~2 CPU-s (peft, pandas,
scipy, datasets: 2,100 modules).

verl swallows exceptions raised while loading plugins (it logs them at debug level), so a failure
here is printed to stderr before it propagates; radgrpo's engine also imports this module itself in
the driver, where an error stops the run before Ray starts.
"""

from __future__ import annotations

import os
import sys
import traceback

INSTALLED = False
# The hf rollout's registry entries, spelled here rather than read from radgrpo.engine.hf_rollout: the
# rollout-server process imports that module first, which imports verl, which runs this plugin - an
# attribute read from the half-imported module failed there ("partially initialized module") and
# skipped every hook installed after it.
HF_ROLLOUT_NAME = "hf"
HF_SERVER_ADAPTER = "radgrpo.engine.hf_rollout.HFServerAdapter"


def _hf_rollout_replica():
    from radgrpo.engine.hf_rollout import HFRolloutReplica

    return HFRolloutReplica


def _register_hf_rollout() -> None:
    """Add `hf` to verl's rollout registries when their modules are imported."""
    from radgrpo.engine.after_import import when_imported

    when_imported("verl.workers.rollout.base", lambda base: base._ROLLOUT_REGISTRY.__setitem__(
        (HF_ROLLOUT_NAME, "async"), HF_SERVER_ADAPTER))
    when_imported("verl.workers.rollout.replica", lambda replica: replica.RolloutReplicaRegistry.register(
        HF_ROLLOUT_NAME, _hf_rollout_replica))


def _register_processors() -> None:
    """radgrpo.models.processors' torchvision-free processors, registered once transformers' AutoProcessor
    module is imported (registering imports every family's processor classes); `import qwen_vl_utils`
    is served at once. Nothing to do where torchvision imports."""
    from radgrpo.engine.after_import import when_imported
    from radgrpo.models import processors

    if processors.torchvision_available():
        return
    processors.serve_qwen_vl_utils()
    when_imported("transformers.models.auto.processing_auto",
                  lambda _module: processors.register_torchvision_free_processors())


def _install() -> None:
    global INSTALLED
    from radgrpo.engine import step_timing, tracking_hooks, verl_fixes

    verl_fixes.install()
    from radgrpo.engine import reward_metrics  # noqa: F401  (per-component reward metrics, verl #2115)
    tracking_hooks.install()
    _register_processors()
    from radgrpo.engine import trainable

    trainable.install()  # LoRA dropout, modules trained beside LoRA, freeze_vision_tower
    _register_hf_rollout()
    step_timing.install()  # agent-loop workers ready before step 1
    apply_environment()
    INSTALLED = True


_APPLIED: set[str] = set()


def apply_environment() -> None:
    """Install the hooks this process's environment asks for (see the module docstring) that are not
    installed yet. Runs when `import verl` loads the plugin; radgrpo's engine calls it again in the
    driver once the run's environment is set, because the driver imported verl earlier (planning
    validates the config with verl's classes) and then runs verl's trainer itself."""
    from radgrpo.engine import cpu_platform, family_hooks, step_timing
    from radgrpo.models.families import active_family

    if "platform" not in _APPLIED and os.environ.get("VERL_PLATFORM", "").strip().lower() == cpu_platform.PLATFORM_NAME:
        cpu_platform.install()
        _APPLIED.add("platform")
    family = active_family()
    if "family" not in _APPLIED and family is not None:
        family_hooks.install(family)
        _APPLIED.add("family")
    if "replay_poll" not in _APPLIED and step_timing.install_poll_interval():
        _APPLIED.add("replay_poll")


try:
    _install()
except Exception:
    print("radgrpo: the verl plugin failed to load:\n" + traceback.format_exc(), file=sys.stderr)
    raise
