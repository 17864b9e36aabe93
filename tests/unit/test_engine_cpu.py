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


def test_hf_rollout_generates_with_an_image_and_returns_matching_log_probs(tmp_path, monkeypatch):
    import os

    from omegaconf import OmegaConf
    from PIL import Image

    from radgrpo.data.synthetic import draw_chest
    from radgrpo.engine.hf_rollout import HFRolloutServer
    from radgrpo.models.processors import register_torchvision_free_processors
    from radgrpo.models.tiny import ensure_tiny_model

    register_torchvision_free_processors()
    monkeypatch.setenv("RADGRPO_MODEL_FAMILY", "qwen2_5_vl")
    path = str(ensure_tiny_model("tiny_qwen2_5_vl", os.path.join(os.environ["RADGRPO_CACHE"], "tiny_models")))
    model_cfg = OmegaConf.create({"path": path, "trust_remote_code": False, "override_config": {}})
    rollout_cfg = OmegaConf.create({"max_model_len": None, "response_length": 24})
    server = HFRolloutServer(rollout_cfg, model_cfg, replica_rank=0)

    import numpy as np

    pixels, _ = draw_chest(np.random.default_rng(0), 112, 1)
    image = Image.fromarray(pixels).convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Find the lesion."}]}]
    text = server.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = server.processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
    out = server._generate(prompt_ids, {"temperature": 1.0, "max_tokens": 24}, [image])
    assert 0 < len(out.token_ids) <= 24 and len(out.log_probs) == len(out.token_ids)
    assert not set(out.token_ids) & set(server.suppress_tokens)

    # The log-probs are those of the sampled tokens under the model given the image.
    full = server.processor(text=[text], images=[image], return_tensors="pt")
    ids = torch.tensor([prompt_ids + out.token_ids])
    with torch.no_grad():
        logits = server.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                              pixel_values=full["pixel_values"], image_grid_thw=full["image_grid_thw"],
                              mm_token_type_ids=(ids == server.processor.image_token_id).long()).logits[0]
    logits[:, server.suppress_tokens] = float("-inf")
    expected = torch.log_softmax(logits[len(prompt_ids) - 1:-1], -1).gather(-1, torch.tensor(out.token_ids)[:, None])
    assert torch.allclose(torch.tensor(out.log_probs), expected.squeeze(-1), atol=1e-4)
