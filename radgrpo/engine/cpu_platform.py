"""verl platform for machines without an accelerator.

verl 0.9.1 knows NVIDIA, Ascend and ROCm platforms and falls back to CUDA, so on a laptop or a CI
runner it asks NCCL for a process group and dies. This platform says "cpu" to verl:
- device `cpu`, collective backend `gloo`, a device module of cuda-like calls that are no-ops or
  their CPU meaning (synchronize, empty_cache, memory statistics ...);
- the Ray resource name stays `GPU`: verl's resource pools ask Ray for GPUs, and radgrpo starts
  Ray with logical GPUs (`ray_init.num_gpus`), one per training process;
- verl builds its process group backend as `cpu:gloo,{device}:{backend}`, which on this platform
  names `cpu` twice ("Duplicate device type cpu"); `init_process_group` is wrapped to drop the
  duplicate;
- page-locked ("pinned") host memory exists only for copies to an accelerator; verl and FSDP2 pin
  tensors (e.g. the reference model's CPUOffloadPolicy(pin_memory=True)), which raises "Cannot access
  accelerator device" here, so `Tensor.pin_memory` returns the tensor itself;
- verl registers its FSDP engines for `cuda`/`npu` only; `VERL_ENGINE_DEVICE=cuda` makes its engine
  registry pick them (they run on CPU tensors unchanged).

Facts and measurements: ../shared/notes/verl-on-cpu.md. Activated only when `VERL_PLATFORM=cpu`
(radgrpo's engine sets it for `cluster.device=cpu` and forwards it to every Ray process).
"""

from __future__ import annotations

import functools
import os
import types
from contextlib import contextmanager
from typing import Any, Optional

import psutil
import torch
import torch.distributed
from verl.plugin.platform import PlatformBase, PlatformRegistry

PLATFORM_NAME = "cpu"


def _build_device_module() -> types.ModuleType:
    """A `torch.cuda`-shaped module for the host: what verl calls on its device module."""
    module = types.ModuleType("radgrpo_cpu_device")
    for name in ("is_available", "synchronize", "current_stream", "stream", "Stream", "Event", "StreamContext"):
        if hasattr(torch.cpu, name):
            setattr(module, name, getattr(torch.cpu, name))
    module.is_available = lambda: True
    module.current_device = lambda: torch.device("cpu")
    module.device_count = lambda: 1
    module.set_device = lambda *_args, **_kwargs: None
    module.empty_cache = lambda: None
    module.ipc_collect = lambda: None
    module.manual_seed = torch.manual_seed
    module.manual_seed_all = torch.manual_seed
    module.get_rng_state = lambda *_args, **_kwargs: torch.get_rng_state()
    module.set_rng_state = lambda state, *_args, **_kwargs: torch.set_rng_state(state)
    module.get_device_name = lambda *_args, **_kwargs: "cpu"
    module.get_device_capability = lambda *_args, **_kwargs: (None, None)
    module.is_bf16_supported = lambda *_args, **_kwargs: True

    def process_rss(*_args, **_kwargs) -> int:
        return psutil.Process().memory_info().rss

    def mem_get_info(*_args, **_kwargs) -> tuple[int, int]:
        vm = psutil.virtual_memory()
        return vm.available, vm.total

    module.memory_allocated = process_rss
    module.memory_reserved = process_rss
    module.max_memory_allocated = process_rss
    module.max_memory_reserved = process_rss
    module.mem_get_info = mem_get_info
    module.reset_peak_memory_stats = lambda *_args, **_kwargs: None
    module.memory_stats = lambda *_args, **_kwargs: {}
    module.nvtx = types.SimpleNamespace(range=_null_range, range_push=lambda *_: None, range_pop=lambda: None)
    return module


@contextmanager
def _null_range(*_args, **_kwargs):
    yield


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """The host CPU as verl's device, with gloo collectives."""

    _device_module = _build_device_module()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return self._device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check=False) -> bool:
        # Never auto-detected: a GPU node's CPU-only Ray actors must not pick it. VERL_PLATFORM selects it.
        return False

    def current_device(self) -> torch.device:
        # verl passes this straight to `.to(...)`, `torch.device(...)` and `device=`; the integer 0
        # would mean "accelerator 0", so the host device itself is returned.
        return torch.device("cpu")

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def _dedupe_backend(backend: str | None) -> str | None:
    """'cpu:gloo,cpu:gloo' -> 'cpu:gloo': keep the first backend named for each device."""
    if not backend or ":" not in backend:
        return backend
    seen: dict[str, str] = {}
    for part in backend.split(","):
        device, _, name = part.partition(":")
        seen.setdefault(device.strip(), name.strip())
    return ",".join(f"{device}:{name}" for device, name in seen.items())


def _patch_init_process_group() -> None:
    original = torch.distributed.init_process_group
    if getattr(original, "_radgrpo_patched", False):
        return

    @functools.wraps(original)
    def init_process_group(*args, **kwargs):
        if "backend" in kwargs:
            kwargs["backend"] = _dedupe_backend(kwargs["backend"])
        elif args:
            args = (_dedupe_backend(args[0]), *args[1:])
        return original(*args, **kwargs)

    init_process_group._radgrpo_patched = True
    torch.distributed.init_process_group = init_process_group


def _patch_pin_memory() -> None:
    torch.Tensor.pin_memory = lambda self, *_args, **_kwargs: self


def install() -> None:
    """Make this process run verl on the CPU. Called by the plugin when VERL_PLATFORM=cpu."""
    os.environ.setdefault("VERL_ENGINE_DEVICE", "cuda")
    _patch_init_process_group()
    _patch_pin_memory()
