"""An `hf` rollout for verl 0.9.1: generation with transformers' `.generate`, for machines without vLLM.

verl 0.9.1 removed its synchronous HF rollout; every rollout is now a server (vLLM, SGLang,
TensorRT-LLM) that verl's agent loop calls token-in/token-out, and none of them runs on a CPU. This
module supplies the three pieces verl expects of a rollout backend, registered under the name `hf`
(by radgrpo.engine.plugin):

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
import re
from dataclasses import dataclass
from typing import Any, Generator, Optional

import numpy as np
import ray
import torch
from verl.utils.device import get_resource_name
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from radgrpo.engine import vision_trace
from radgrpo.models.families import ENV as FAMILY_ENV
from radgrpo.models.families import active_family

logger = logging.getLogger(__name__)

# verl's agent loop sends `det-<sample index>` request ids under `rollout.full_determinism=true`.
DETERMINISTIC_REQUEST_PREFIX = "det-"


def server_actor_name(replica_rank: int) -> str:
    """Ray actor name of a replica's server, unique per Ray job so runs sharing a cluster never collide."""
    return f"radgrpo_hf_rollout_{ray.get_runtime_context().get_job_id()}_{replica_rank}"


def _load_model(family, local_path: str, trust_remote_code: bool):
    """The policy (the family's auto class and class patches), on CPU in float32, in eval mode."""
    return family.load_model(local_path, torch.float32, trust_remote_code)


@dataclass
class _Request:
    prompt_ids: list[int]
    sampling: dict[str, Any]
    images: list[Any]
    seed: int
    future: Any  # asyncio.Future[TokenOutput], resolved by the batcher


def _image_fingerprint(image: Any) -> bytes:
    """The bytes that identify an image's content (PIL image, array or encoded bytes)."""
    if hasattr(image, "mode") and hasattr(image, "tobytes"):  # PIL
        return f"{image.mode}{image.size}".encode() + image.tobytes()
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        return f"{image.dtype}{image.shape}".encode() + image.tobytes()
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    raise TypeError(f"the hf rollout cannot fingerprint an image of type {type(image).__name__}")


class _RowSampler:
    """A transformers logits processor that samples every row from its own random generator.

    `generate` runs greedy and picks the one token this processor leaves finite, so the batch's
    composition never changes what a row samples. Per row: suppressed tokens, temperature (<= 0 is
    greedy), top-k and top-p, as in the request's sampling parameters.
    """

    def __init__(self, requests: list[_Request], suppress_tokens: list[int], prompt_width: int, max_new: int):
        # every uniform draw a row can need, drawn up front from the row's own generator
        self.draws = torch.stack([torch.rand(max_new, generator=torch.Generator().manual_seed(r.seed % (2**63)))
                                  for r in requests])
        self.prompt_width = prompt_width
        temperatures = [float(r.sampling.get("temperature", 1.0)) for r in requests]
        self.greedy = torch.tensor([t <= 0 for t in temperatures])
        self.scale = [t if t > 0 else 1.0 for t in temperatures]
        self._scale = torch.tensor(self.scale)[:, None]
        self.top_k = [int(r.sampling.get("top_k", -1) or -1) for r in requests]
        self.top_p = [float(r.sampling.get("top_p", 1.0) or 1.0) for r in requests]
        self.suppress_tokens = suppress_tokens

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.to(torch.float32, copy=True)  # generate keeps `scores` as the raw logits
        if self.suppress_tokens:
            logits[:, self.suppress_tokens] = float("-inf")
        greedy_choice = logits.argmax(-1)
        logits = logits / self._scale
        for row, (k, p) in enumerate(zip(self.top_k, self.top_p)):
            if 0 < k < logits.shape[1]:
                logits[row, logits[row] < torch.topk(logits[row], k).values[-1]] = float("-inf")
            if p < 1.0:
                ordered, order = torch.sort(logits[row], descending=True)
                probs = torch.softmax(ordered, -1)
                logits[row, order[(torch.cumsum(probs, -1) - probs) > p]] = float("-inf")
        cdf = torch.cumsum(torch.softmax(logits, -1), -1)
        draws = self.draws[:, input_ids.shape[1] - self.prompt_width] * cdf[:, -1]
        choice = torch.searchsorted(cdf, draws[:, None], right=True).squeeze(1).clamp(max=logits.shape[1] - 1)
        choice = torch.where(self.greedy, greedy_choice, choice)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(choice)), choice] = 0.0
        return out


class HFRolloutServer:
    """Token-in/token-out generation with a transformers model (one Ray actor per replica).

    Concurrent requests are gathered into batches (`_batch_loop`) and generated together with left
    padding; `generate` stops each row at its own end-of-sequence. Each request samples from its own
    random generator, seeded from the request's content (`request_seed`), so what a request gets does
    not depend on which other requests share its batch or in what order they arrived.
    """

    # How long the batcher waits for more requests after the last one arrived, and at most in all:
    # verl's agent loop tokenises and sends a step's requests one after another.
    GATHER_IDLE_S = 0.03
    GATHER_MAX_S = 1.0

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
        self.suppress_tokens = self._suppressed_token_ids()
        eos = self.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        pad = self.generation_config.pad_token_id
        self.pad_id = pad if pad is not None else getattr(self.tokenizer, "pad_token_id", None)
        if self.pad_id is None:
            self.pad_id = min(self.eos_ids)
        self.max_batch = int(getattr(config, "max_num_seqs", 0) or 256)
        self.global_steps: Optional[int] = None
        self.weight_version = 0
        self._lora_config = None
        self.seed = int(getattr(config, "seed", 0) or 0)
        self._occurrences: dict[str, int] = {}
        self._pending: list[_Request] = []
        self._batcher: Optional[asyncio.Task] = None
        self._arrived = asyncio.Event()

    # ----- family-specific inputs (the run's model family decides) ----------------------------
    def _suppressed_token_ids(self) -> list[int]:
        """Tokens the rollout never samples: the family's image placeholders, which a random model
        would otherwise emit and which break the actor's forward."""
        vocab = self.tokenizer.get_vocab()
        return [vocab[t] for t in self.family.suppress_tokens if t in vocab]

    def _vision_inputs(self, requests: list["_Request"], input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's image inputs for a batch: every row's images in row order, as the family's
        `generate` takes them; each row's image sizes and placeholder count go to the vision trace."""
        images = [image for request in requests for image in request.images]
        image_token_id = self.family.image_token_id(self.tokenizer)
        for row, request in enumerate(requests):
            vision_trace.record("rollout", image_sizes=[list(getattr(im, "size", ())) for im in request.images],
                                image_tokens=int((input_ids[row] == image_token_id).sum()))
        return self.family.rollout_inputs(self.processor, input_ids, images)

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
        request = _Request(
            prompt_ids=list(prompt_ids),
            sampling=dict(sampling_params),
            images=list(image_data or []),
            seed=self.request_seed(prompt_ids, image_data, request_id),
            future=asyncio.get_running_loop().create_future(),
        )
        self._pending.append(request)
        self._arrived.set()
        if self._batcher is None or self._batcher.done():
            self._batcher = asyncio.create_task(self._batch_loop())
        return await request.future

    def request_seed(self, prompt_ids: list[int], images: Optional[list[Any]], request_id: str = "") -> int:
        """Seed of one request: the run's seed, its content (token ids and image pixels), and how many
        requests with the same key came before.

        The key is the content plus verl's request id when that id is deterministic (`det-<index in
        the batch>`, sent under `rollout.full_determinism=true`, which radgrpo's CPU profile sets): the
        n samples of one prompt in a GRPO group then get different seeds whatever order they arrive
        in. With random request ids the key is the content alone and identical requests share seeds
        in arrival order, which only permutes them.
        """
        digest = hashlib.sha256(repr(list(prompt_ids)).encode())
        for image in images or []:
            digest.update(_image_fingerprint(image))
        key = digest.hexdigest()
        if request_id.startswith(DETERMINISTIC_REQUEST_PREFIX):
            key += ":" + request_id
        occurrence = self._occurrences.get(key, 0)
        self._occurrences[key] = occurrence + 1
        return int.from_bytes(hashlib.sha256(f"{self.seed}:{key}:{occurrence}".encode()).digest()[:8], "big")

    async def _batch_loop(self) -> None:
        """Gather the requests that arrive close together, generate them as one batch, repeat."""
        loop = asyncio.get_running_loop()
        while self._pending:
            started = loop.time()
            while len(self._pending) < self.max_batch and loop.time() - started < self.GATHER_MAX_S:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), self.GATHER_IDLE_S)
                except asyncio.TimeoutError:
                    break
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                outputs = await asyncio.to_thread(self.generate_batch, batch)
            except Exception as exc:  # every waiting request sees the failure
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            for request, output in zip(batch, outputs):
                if not request.future.done():
                    request.future.set_result(output)

    def generate_batch(self, requests: list["_Request"]) -> list[TokenOutput]:
        """Generate every request in one left-padded `model.generate` call; one TokenOutput each."""
        limits = [self._max_new_tokens(r) for r in requests]
        width = max(len(r.prompt_ids) for r in requests)
        input_ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, request in enumerate(requests):
            input_ids[row, width - len(request.prompt_ids):] = torch.tensor(request.prompt_ids)
            attention_mask[row, width - len(request.prompt_ids):] = 1
        inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if any(request.images for request in requests):
            inputs.update(self._vision_inputs(requests, input_ids))

        sampler = _RowSampler(requests, self.suppress_tokens, width, max(limits))
        with torch.no_grad():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max(limits),
                do_sample=False,  # _RowSampler samples; generate takes the one token it leaves
                temperature=None,
                top_p=None,
                top_k=None,
                logits_processor=[sampler],
                eos_token_id=sorted(self.eos_ids),
                pad_token_id=self.pad_id,
                return_dict_in_generate=True,
                output_logits=True,
            )
        new_tokens = out.sequences[:, width:]
        logits = torch.stack(out.logits, dim=1).float()  # (rows, new, vocab), before any processing
        return [
            self._token_output(request, new_tokens[row, :limit], logits[row, :limit], sampler.scale[row], limit)
            for row, (request, limit) in enumerate(zip(requests, limits))
        ]

    def _max_new_tokens(self, request: "_Request") -> int:
        sampling = request.sampling
        max_new = int(sampling.get("max_tokens") or sampling.get("max_new_tokens") or self.config.response_length)
        if self.config.max_model_len:
            max_new = min(max_new, self.config.max_model_len - len(request.prompt_ids))
        if max_new < 1:
            raise ValueError(f"prompt of {len(request.prompt_ids)} tokens leaves no room to generate")
        return max_new

    def _token_output(self, request: "_Request", tokens: torch.Tensor, logits: torch.Tensor, scale: float,
                      limit: int) -> TokenOutput:
        """One row's tokens up to its first end-of-sequence, with their log-probs under the
        temperature-scaled distribution (the quantity verl's actor recomputes)."""
        token_ids = tokens.tolist()
        end = next((i + 1 for i, t in enumerate(token_ids) if t in self.eos_ids), None)
        if end is not None:
            token_ids, logits = token_ids[:end], logits[:end]
        if self.suppress_tokens:
            logits = logits.clone()
            logits[:, self.suppress_tokens] = float("-inf")
        log_probs = torch.log_softmax(logits / scale, dim=-1).gather(-1, torch.tensor(token_ids)[:, None]).squeeze(-1)
        want_logprobs = request.sampling.get("logprobs", True) is not False
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs.tolist() if want_logprobs else None,
            stop_reason="completed" if end is not None or len(token_ids) < limit else None,
            num_preempted=0,
            extra_fields={"global_steps": self.global_steps, "weight_version": self.weight_version},
        )

    # ----- weights ----------------------------------------------------------------------------
    def load_weights(self, state_dict: dict[str, torch.Tensor], global_steps: Optional[int] = None,
                     peft_config: Optional[dict[str, Any]] = None, base_sync_done: bool = False) -> int:
        """Replace the policy's weights by the trainer's; returns the number of tensors loaded.

        With LoRA (verl's adapter sync, `model.lora.merge=false`) verl sends `peft_config`: the first
        update carries the base weights, later ones the adapter's tensors (plus any module trained in
        full beside it). The server then holds the same peft LoRA layers as the actor, so it computes
        exactly what the actor computes (verl's merge option instead casts merged weights to bf16).
        """
        if peft_config is not None:
            self._ensure_lora(peft_config)
        model_keys = set(self.model.state_dict().keys())
        renamed = {_match_key(_peft_key(k), model_keys): v for k, v in state_dict.items()}
        unknown = [k for k in renamed if k not in model_keys]
        if unknown:
            raise KeyError(f"hf rollout got weights the model does not have, e.g. {unknown[:3]}")
        if peft_config is not None and base_sync_done:
            missing = [k for k in model_keys if "lora_" in k and k not in renamed]
            if missing:
                raise KeyError(f"hf rollout: the adapter update lacks LoRA weights, e.g. {missing[:3]}")
        self.model.load_state_dict(renamed, strict=False)
        self.weight_version += 1
        if global_steps is not None:
            self.global_steps = global_steps
        return len(renamed)

    def _ensure_lora(self, peft_config: dict[str, Any]) -> None:
        """Add the actor's LoRA layers (adapter `default`) to the served model, once."""
        if self._lora_config is not None:
            return
        from peft import LoraConfig, inject_adapter_in_model

        fields = {k: v for k, v in peft_config.items() if k in LoraConfig.__dataclass_fields__
                  and LoraConfig.__dataclass_fields__[k].init}
        self._lora_config = LoraConfig(**fields)
        inject_adapter_in_model(self._lora_config, self.model)
        self.model.eval()  # new LoRA layers start in training mode (their dropout would be live)

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
        if self._batcher is not None:
            await asyncio.shield(self._batcher)

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


def _peft_key(name: str) -> str:
    """A peft state-dict name as the served model (LoRA adapter `default`) names it."""
    name = name.removeprefix("base_model.model.")
    return re.sub(r"\.(lora_[AB]|lora_embedding_[AB])\.(weight|bias)$", r".\1.default.\2", name)


def _match_key(name: str, model_keys: set[str]) -> str:
    """Map a trainer parameter name onto the rollout model's (FSDP may add or drop a `model.` prefix;
    peft names a LoRA-wrapped layer's own weight `<layer>.base_layer.weight`)."""
    candidates = [name, f"model.{name}", name.removeprefix("model."), name.replace("model.language_model.", "model.")]
    for candidate in list(candidates):
        stem, _, leaf = candidate.rpartition(".")
        candidates += [f"{stem}.base_layer.{leaf}", candidate.replace(".base_layer.", ".")]
    return next((c for c in candidates if c in model_keys), name)


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
        state = {}
        for name, tensor in weights:  # every rank iterates: producing a tensor may be a collective
            if self.is_replica_leader:
                full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
                state[name] = full.detach().to("cpu", copy=True)
        if self.is_replica_leader:
            await self._server_handle().load_weights.remote(
                state, kwargs.get("global_steps"), kwargs.get("peft_config"), bool(kwargs.get("base_sync_done", False))
            )
