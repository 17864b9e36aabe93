"""radgrpo's verl extensions in isolation: process-group backend, the mrope position-id fix, the hf
rollout server's generation and log-probs on the tiny model with an image."""

from __future__ import annotations

import torch

from radgrpo.engine.cpu_platform import _dedupe_backend


def test_duplicate_cpu_backend_is_dropped():
    assert _dedupe_backend("cpu:gloo,cpu:gloo") == "cpu:gloo"
    assert _dedupe_backend("cpu:gloo,cuda:nccl") == "cpu:gloo,cuda:nccl"
    assert _dedupe_backend("gloo") == "gloo"


def test_equal_length_mrope_position_ids_are_rebuilt_ragged_along_length():
    from tensordict import TensorDict
    from verl.utils.tensordict_utils import index_select_tensor_dict

    from radgrpo.engine.verl_fixes import maybe_fix_3d_position_ids

    samples = [torch.arange(4 * 7).reshape(4, 7) + 100 * i for i in range(3)]
    broken = torch.nested.as_nested_tensor(samples, layout=torch.jagged)  # what verl builds
    data = TensorDict({"position_ids": broken}, batch_size=[3])
    maybe_fix_3d_position_ids(data)
    picked = index_select_tensor_dict(data, [2, 0])["position_ids"].unbind()
    assert torch.equal(picked[0], samples[2]) and torch.equal(picked[1], samples[0])


def _tiny_server(monkeypatch):
    import os

    from omegaconf import OmegaConf

    from radgrpo.engine.hf_rollout import HFRolloutServer
    from radgrpo.models.processors import register_torchvision_free_processors
    from radgrpo.models.tiny import ensure_tiny_model

    register_torchvision_free_processors()
    monkeypatch.setenv("RADGRPO_MODEL_FAMILY", "qwen2_5_vl")
    path = str(ensure_tiny_model("tiny_qwen2_5_vl", os.path.join(os.environ["RADGRPO_CACHE"], "tiny_models")))
    model_cfg = OmegaConf.create({"path": path, "trust_remote_code": False, "override_config": {}})
    rollout_cfg = OmegaConf.create({"max_model_len": None, "response_length": 24, "seed": 3})
    return HFRolloutServer(rollout_cfg, model_cfg, replica_rank=0)


def _chest(seed: int, size: int = 112):
    import numpy as np
    from PIL import Image

    from radgrpo.data.synthetic import draw_chest

    pixels, _ = draw_chest(np.random.default_rng(seed), size, 1)
    return Image.fromarray(pixels).convert("RGB")


def _prompt_ids(server, image, text: str) -> list[int]:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    chat = server.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return server.processor(text=[chat], images=[image], return_tensors="pt")["input_ids"][0].tolist()


def _request(server, prompt_ids, image, request_id, sampling=None):
    from radgrpo.engine.hf_rollout import _Request

    return _Request(prompt_ids=prompt_ids, sampling=sampling or {"temperature": 1.0, "max_tokens": 24},
                    images=[image], seed=server.request_seed(prompt_ids, [image], request_id), future=None)


def test_hf_rollout_batch_returns_forward_pass_log_probs_whatever_the_batch(monkeypatch):
    """A left-padded batch of image prompts of different lengths: each row's log-probs are those of a
    forward pass over that row alone, and a row samples the same tokens alone or in a batch."""
    server = _tiny_server(monkeypatch)
    images = [_chest(0), _chest(1, size=140), _chest(2)]
    texts = ["Find the lesion.", "Where is the abnormality in this chest X-ray? Answer with a box.", "Box?"]
    prompts = [_prompt_ids(server, image, text) for image, text in zip(images, texts)]
    assert len({len(p) for p in prompts}) == 3  # the batch really is padded
    requests = [_request(server, p, image, f"det-{i}") for i, (p, image) in enumerate(zip(prompts, images))]
    outputs = server.generate_batch(requests)

    for prompt_ids, image, out in zip(prompts, images, outputs):
        assert 0 < len(out.token_ids) <= 24 and len(out.log_probs) == len(out.token_ids)
        assert not set(out.token_ids) & set(server.suppress_tokens)
        vision = server.processor.image_processor(images=[image], return_tensors="pt")
        ids = torch.tensor([prompt_ids + out.token_ids])
        with torch.no_grad():
            logits = server.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                                  pixel_values=vision["pixel_values"], image_grid_thw=vision["image_grid_thw"],
                                  mm_token_type_ids=(ids == server.processor.image_token_id).long()).logits[0]
        logits[:, server.suppress_tokens] = float("-inf")
        expected = torch.log_softmax(logits[len(prompt_ids) - 1:-1], -1).gather(-1, torch.tensor(out.token_ids)[:, None])
        assert torch.allclose(torch.tensor(out.log_probs), expected.squeeze(-1), atol=1e-4)

    # the same request (same seed) alone, and in a batch in another order, samples the same tokens
    alone = server.generate_batch([requests[1]])[0]
    reordered = server.generate_batch([requests[2], requests[1]])[1]
    assert alone.token_ids == outputs[1].token_ids == reordered.token_ids


def test_hf_rollout_seed_depends_on_pixels_and_sample_index_not_arrival(monkeypatch):
    server = _tiny_server(monkeypatch)
    image_a, image_b = _chest(0), _chest(1)
    ids = _prompt_ids(server, image_a, "Find the lesion.")
    assert ids == _prompt_ids(server, image_b, "Find the lesion.")  # the synthetic set's situation
    assert server.request_seed(ids, [image_a], "det-9") != server.request_seed(ids, [image_b], "det-9")

    # the n samples of one prompt (det-0..det-3) get distinct seeds that do not depend on arrival order
    first = [server.request_seed(ids, [image_a], f"det-{i}") for i in (3, 1, 0, 2)]
    other = _tiny_server(monkeypatch)
    second = [other.request_seed(ids, [image_a], f"det-{i}") for i in (0, 1, 2, 3)]
    assert len(set(first)) == 4 and sorted(first) == sorted(second)
    assert first[2] == second[0] and first[0] == second[3]
    # the same sample of the same prompt in a later step draws anew
    assert other.request_seed(ids, [image_a], "det-0") not in second
