"""An `hf` rollout for verl 0.9.1: generation with transformers' `.generate`, for machines without vLLM.

verl 0.9.1 removed its synchronous HF rollout; every rollout is now a server (vLLM, SGLang,
TensorRT-LLM) that verl's agent loop calls token-in/token-out, and none of them runs on a CPU. This
module supplies the three pieces verl expects of a rollout backend, registered under the name `hf`:

- `HFRolloutServer`, a Ray actor holding a copy of the policy: `generate(prompt_ids, sampling_params,
  image_data=...)` returns verl's `TokenOutput` with per-token log-probs of the sampled tokens under
  the temperature-scaled distribution - the same quantity the actor recomputes, so verl's
  `training/rollout_probs_diff_*` metrics compare like with like;
- `HFRolloutReplica`, verl's `RolloutReplica`, which starts one server per replica on the node of
  the replica's first training worker;
- `HFServerAdapter`, verl's `BaseRollout` living in each training worker: after every optimiser step
  verl streams the updated weights through `update_weights`; every rank drains the stream (it may
  involve FSDP collectives) and rank 0 of the replica ships the state dict to the server.

What differs between model families - the auto class, the image inputs `generate` takes, the special
tokens never to sample (a random tiny model would otherwise emit image placeholders and break the
actor's forward) - comes from the run's model family (radgrpo.models.families).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from typing import Any, Generator, Optional

import ray
import torch
from verl.utils.device import get_resource_name
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from radgrpo.engine import vision_trace
from radgrpo.models.families import ENV as FAMILY_ENV
from radgrpo.models.families import active_family

logger = logging.getLogger(__name__)



def server_actor_name(replica_rank: int) -> str:
    """Ray actor name of a replica's server, unique per Ray job so runs sharing a cluster never collide."""
    return f"radgrpo_hf_rollout_{ray.get_runtime_context().get_job_id()}_{replica_rank}"


def _load_model(family, local_path: str, trust_remote_code: bool):
    """The policy's architecture class (the family's auto class), on CPU in float32, in eval mode."""
    import transformers

    auto_cls = getattr(transformers, family.auto_class)
    model = auto_cls.from_pretrained(
        local_path, torch_dtype=torch.float32, attn_implementation="sdpa", trust_remote_code=trust_remote_code
    )
    return model.eval()


class HFRolloutServer:
    """Token-in/token-out generation with a transformers model (one Ray actor per replica)."""

    def __init__(self, config, model_config, replica_rank: int):
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        self.config = config
        self.replica_rank = replica_rank
        model_config = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.tokenizer = model_config.tokenizer
        self.processor = model_config.processor
        self.family = active_family()
        if self.family is None:
            raise RuntimeError(f"the hf rollout needs the model family: {FAMILY_ENV} is not set")
        self.model = _load_model(self.family, model_config.local_path, bool(model_config.trust_remote_code))
        self.generation_config = self.model.generation_config
        vocab = self.tokenizer.get_vocab()
        self.suppress_tokens = [vocab[t] for t in self.family.suppress_tokens if t in vocab]
        self.global_steps: Optional[int] = None
        self.weight_version = 0
        self.seed = int(getattr(config, "seed", 0) or 0)
        self._requests_per_prompt: dict[str, int] = {}
        self._lock = asyncio.Lock()

    # ----- generation -------------------------------------------------------------------------
    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Optional[list[Any]] = None,
        video_data: Optional[list[Any]] = None,
        **_unused: Any,
    ) -> TokenOutput:
        if video_data:
            raise NotImplementedError("the hf rollout takes images only; use the vllm rollout for video")
        async with self._lock:
            torch.manual_seed(self._request_seed(prompt_ids, image_data))
            return await asyncio.to_thread(self._generate, list(prompt_ids), dict(sampling_params), image_data)

    def _request_seed(self, prompt_ids: list[int], images: Optional[list[Any]]) -> int:
        """Seed of one request: the run's seed, the prompt, and how often that prompt came before.

        Requests arrive concurrently and in no fixed order; seeding by content keeps a run
        reproducible (the k-th sample of a prompt is the same sample in every run), and the n
        samples of one prompt in a GRPO group still differ.
        """
        digest = hashlib.sha256(str((list(prompt_ids), len(images or []))).encode()).hexdigest()
        occurrence = self._requests_per_prompt.get(digest, 0)
        self._requests_per_prompt[digest] = occurrence + 1
        return int.from_bytes(hashlib.sha256(f"{self.seed}:{digest}:{occurrence}".encode()).digest()[:8], "big")

    def _generate(self, prompt_ids: list[int], sampling: dict[str, Any], images: Optional[list[Any]]) -> TokenOutput:
        input_ids = torch.tensor([prompt_ids], dtype=torch.long)
        inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if images:
            inputs.update(self.family.rollout_inputs(self.processor, input_ids, images))
            vision_trace.record("rollout", image_sizes=[list(getattr(im, "size", ())) for im in images],
                                image_tokens=int((input_ids == self.family.image_token_id(self.tokenizer)).sum()))

        max_room = self.config.max_model_len - len(prompt_ids) if self.config.max_model_len else None
        max_new = int(sampling.get("max_tokens") or sampling.get("max_new_tokens") or self.config.response_length)
        if max_room is not None:
            max_new = min(max_new, max_room)
        if max_new < 1:
            raise ValueError(f"prompt of {len(prompt_ids)} tokens leaves no room to generate")

        temperature = float(sampling.get("temperature", 1.0))
        top_k = int(sampling.get("top_k", -1) or -1)
        greedy = temperature <= 0
        gen_kwargs = dict(
            max_new_tokens=max_new,
            do_sample=not greedy,
            temperature=temperature if not greedy else None,
            top_p=float(sampling.get("top_p", 1.0)) if not greedy else None,
            top_k=top_k if (top_k > 0 and not greedy) else None,
            suppress_tokens=self.suppress_tokens or None,
            eos_token_id=self.generation_config.eos_token_id,
            pad_token_id=self.generation_config.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
        with torch.no_grad():
            out = self.model.generate(**inputs, **gen_kwargs)
        new_tokens = out.sequences[0, input_ids.shape[1]:]
        logits = torch.stack(out.logits, dim=1)[0].float()  # (new, vocab), before any warping
        if self.suppress_tokens:
            logits[:, self.suppress_tokens] = float("-inf")
        scale = temperature if not greedy else 1.0
        log_probs = torch.log_softmax(logits / scale, dim=-1).gather(-1, new_tokens[:, None]).squeeze(-1)

        token_ids = new_tokens.tolist()
        eos = self.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        if eos_ids & set(token_ids):  # cut what generate padded after the first eos
            end = next(i for i, t in enumerate(token_ids) if t in eos_ids) + 1
            token_ids, log_probs = token_ids[:end], log_probs[:end]
            stop_reason = "completed"
        else:
            stop_reason = "completed" if len(token_ids) < max_new else None
        want_logprobs = sampling.get("logprobs", True) is not False
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs.tolist() if want_logprobs else None,
            stop_reason=stop_reason,
            num_preempted=0,
            extra_fields={"global_steps": self.global_steps, "weight_version": self.weight_version},
        )

    # ----- weights ----------------------------------------------------------------------------
    def load_weights(self, state_dict: dict[str, torch.Tensor], global_steps: Optional[int] = None) -> int:
        """Replace the policy's weights by the trainer's; returns the number of tensors loaded."""
        model_keys = set(self.model.state_dict().keys())
        renamed = {_match_key(k, model_keys): v for k, v in state_dict.items()}
        unknown = [k for k in renamed if k not in model_keys]
        if unknown:
            raise KeyError(f"hf rollout got weights the model does not have, e.g. {unknown[:3]}")
        self.model.load_state_dict(renamed, strict=False)
        self.weight_version += 1
        if global_steps is not None:
            self.global_steps = global_steps
        return len(renamed)

    # ----- lifecycle calls verl makes on every rollout server (nothing to free on a CPU) ------
    async def wake_up(self, tags: Optional[list[str]] = None):
        return None

    async def sleep(self):
        return None

    async def clear_kv_cache(self):
        return None

    async def release_kv_cache(self):
        return None

    async def resume_kv_cache(self):
        return None

    async def wait_for_requests_to_drain(self):
        async with self._lock:
            return None

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False):
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self):
        return None

    async def start_profile(self, **kwargs):
        return None

    async def stop_profile(self):
        return None

    async def set_global_steps(self, global_steps: int):
        self.global_steps = global_steps


def _match_key(name: str, model_keys: set[str]) -> str:
    """Map a trainer parameter name onto the rollout model's (FSDP may add or drop a `model.` prefix)."""
    if name in model_keys:
        return name
    for candidate in (f"model.{name}", name.removeprefix("model."), name.replace("model.language_model.", "model.")):
        if candidate in model_keys:
            return candidate
    return name


class HFRolloutReplica(RolloutReplica):
    """One `HFRolloutServer` per replica, on the node of the replica's first worker."""

    async def launch_servers(self):
        node_ids = await asyncio.gather(
            *[w.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()) for w in self.workers]
        ) if self.workers else [ray.get_runtime_context().get_node_id()]
        name = server_actor_name(self.replica_rank)
        server = ray.remote(HFRolloutServer).options(
            name=name,
            num_cpus=0,
            scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                node_id=node_ids[0], soft=False
            ),
            max_concurrency=self.max_concurrency,
        ).remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"{name}:0"

    def rollout_worker_use_gpu(self) -> bool:
        return get_resource_name() == "GPU"


class HFServerAdapter(BaseRollout):
    """Lives in each training worker; forwards updated weights to the replica's `HFRolloutServer`."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        rollout_world_size = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // rollout_world_size if replica_rank == -1 else replica_rank
        self.is_replica_leader = rank % rollout_world_size == 0
        self._server = None

    def _server_handle(self):
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]):
        return None

    async def release(self):
        return None

    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        wire_format: str = "named_tensors",
        **kwargs,
    ):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"the hf rollout takes full named tensors, not {wire_format!r}")
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError("the hf rollout needs merged LoRA weights: set actor_rollout_ref.model.lora.merge=true")
        state = {}
        for name, tensor in weights:  # every rank iterates: producing a tensor may be a collective
            if self.is_replica_leader:
                full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
                state[name] = full.detach().to("cpu", copy=True)
        if self.is_replica_leader:
            await self._server_handle().load_weights.remote(state, kwargs.get("global_steps"))
