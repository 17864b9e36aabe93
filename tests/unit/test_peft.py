"""Parameter-efficient settings: the peft options plan into verl configs, unsupported GPU combinations
fail at planning, radgrpo's trainability rules act on the real tiny Qwen2.5-VL, and the hf rollout
serves what verl's LoRA weight sync sends."""

from __future__ import annotations

import pytest
import torch

from radgrpo.engine import trainable
from radgrpo.models.families import get_family
from radgrpo.runs.plan import ConfigError, plan_run

from .test_config_tree import compose_train


def _plan(overrides, tmp_path):
    return plan_run(compose_train(overrides, tmp_path))


@pytest.fixture
def vllm_lora_rank_check(monkeypatch):
    """verl's validate_config checks a LoRA rank against vLLM's allowed ranks by importing its vLLM
    rollout, which needs vllm (GPU installs only). Serve verl's own `get_vllm_max_lora_rank`, taken
    from the installed source, without the vllm import around it."""
    import ast
    import sys
    import types
    from pathlib import Path
    from typing import Literal, get_args

    import verl.workers.rollout as rollout_pkg

    source = (Path(rollout_pkg.__file__).parent / "vllm_rollout" / "utils.py").read_text()
    func = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "get_vllm_max_lora_rank")
    utils = types.ModuleType("verl.workers.rollout.vllm_rollout.utils")
    utils.__dict__.update(Literal=Literal, get_args=get_args)
    exec(compile(ast.Module([func], []), "verl/workers/rollout/vllm_rollout/utils.py", "exec"), utils.__dict__)
    package = types.ModuleType("verl.workers.rollout.vllm_rollout")
    package.__path__ = []
    monkeypatch.setitem(sys.modules, package.__name__, package)
    monkeypatch.setitem(sys.modules, utils.__name__, utils)
    return utils.get_vllm_max_lora_rank


@pytest.mark.parametrize("option", ["qwen2_5_vl_7b", "medgemma_4b", "llava_onevision_7b"])
def test_seed_004_lora_on_gpu_gives_a_config_verl_accepts(option, tmp_path, vllm_lora_rank_check):
    # `radgrpo model=<option> peft=lora cluster.device=cuda dry_run=true`: plan_run ends with verl's
    # validate_config, then radgrpo's LoRA-vs-vLLM check with the family's vision layer names
    assert vllm_lora_rank_check(16) == 16
    plan = _plan([f"model={option}", "peft=lora", "cluster.device=cuda"], tmp_path)
    model = plan.verl_config.actor_rollout_ref.model
    assert plan.verl_config.actor_rollout_ref.rollout.name == "vllm"
    assert (model.lora_rank, model.lora_alpha, model.lora.dropout, model.lora.merge) == (16, 32, 0.05, False)
    assert list(model.target_modules) == ["q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "gate_proj", "up_proj",
                                          "gate_up_proj", "down_proj"]
    assert not trainable.lora_reaches_vision(plan.family, model.target_modules, model.exclude_modules)


def test_vision_lora_with_vllm_fails_at_planning_unless_merged(tmp_path, vllm_lora_rank_check):
    args = ["model=qwen2_5_vl_7b", "peft=lora_vision_lm_head", "cluster.device=cuda"]
    with pytest.raises(ConfigError, match=r"vLLM applies LoRA to the language model only \(verl #3922\)"):
        _plan(args, tmp_path)
    plan = _plan(args + ["++verl.actor_rollout_ref.model.lora.merge=true"], tmp_path)
    assert list(plan.verl_config.actor_rollout_ref.model.lora.trainable_modules) == ["lm_head"]
    # on CPU the hf rollout serves the adapter itself
    assert _plan(["peft=lora_vision_lm_head", "cluster.device=cpu"], tmp_path).device == "cpu"


def test_modules_trained_beside_lora_need_lora(tmp_path):
    verl_cfg = _plan(["peft=full"], tmp_path).verl_config
    verl_cfg.actor_rollout_ref.model.lora.trainable_modules = ["lm_head"]  # as a peft option could set it
    with pytest.raises(ValueError, match="trainable_modules needs LoRA"):
        trainable.check_peft_plan(verl_cfg, "qwen2_5_vl")


@pytest.mark.parametrize("target,exclude,reaches", [
    ("all-linear", None, True),
    ("all-linear", r".*\.language_model\..*", True),
    ("all-linear", r".*\.(visual|vision_tower|vision_model|multi_modal_projector)\..*", False),
    (["q_proj", "v_proj"], None, False),
    (["gate_proj"], None, True),  # Qwen2.5-VL's vision MLP has gate_proj too
    (r".*\.visual\..*\.qkv", None, True),
])
def test_lora_reaches_vision(target, exclude, reaches):
    assert trainable.lora_reaches_vision("qwen2_5_vl", target, exclude) is reaches


@pytest.fixture(scope="module")
def tiny_path():
    from radgrpo.models.tiny import cache_root, ensure_tiny_model

    return ensure_tiny_model("tiny_qwen2_5_vl", cache_root() / "tiny_models")


def _tiny(path):
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    return AutoModelForImageTextToText.from_pretrained(path, torch_dtype=torch.float32)


def peft_keys(option: str, family: str, tmp_path):
    """verl's `actor_rollout_ref.model` keys of peft option `option` in a run of `family`'s tiny model, as
    planning layers them (exclude_modules derived from the family's module names)."""
    from omegaconf import OmegaConf

    from radgrpo.engine.verl_config import group_keys

    cfg = compose_train([f"model={get_family(family).tiny_models[0]}", f"peft={option}"], tmp_path)
    nested = OmegaConf.create()
    for key, value in group_keys(cfg, "peft").items():
        OmegaConf.update(nested, key, value, force_add=True)
    return nested.actor_rollout_ref.model


def _peft_from_yaml(model, option, tmp_path, family="qwen2_5_vl"):
    """What verl's FSDP engine builds for a peft option (transformer_impl._build_lora_module)."""
    from peft import LoraConfig, TaskType, get_peft_model

    keys = peft_keys(option, family, tmp_path)
    target = keys.target_modules if isinstance(keys.target_modules, str) else list(keys.target_modules)
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=keys.lora_rank, lora_alpha=keys.lora_alpha,
                        target_modules=target, exclude_modules=keys.exclude_modules, bias="none")
    return get_peft_model(model, config), keys


def test_freeze_vision_tower_freezes_exactly_the_tower(tiny_path):
    model = _tiny(tiny_path)
    family = get_family("qwen2_5_vl")
    assert trainable.vision_tower_prefixes(model, family.vision_tower[1]) == ["model.visual"]
    trainable.apply_spec(model, trainable.TrainableSpec(freeze_vision_tower=True), family)
    for name, param in model.named_parameters():
        assert param.requires_grad is (not name.startswith("model.visual.")), name


def test_seed_003_trains_vision_lora_and_lm_head_only(tiny_path, tmp_path):
    model, keys = _peft_from_yaml(_tiny(tiny_path), "lora_vision_lm_head", tmp_path)
    spec = trainable.TrainableSpec(lora_dropout=float(keys.lora.dropout), trainable_modules=tuple(keys.lora.trainable_modules))
    counts = trainable.apply_spec(model, spec)
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and counts["trainable"] < counts["total"]
    for name in trained:
        assert ("lora_" in name and ".visual." in name) or name == "base_model.model.lm_head.weight", name
    assert any(".visual.blocks.0.attn.qkv.lora_A" in n for n in trained)
    assert trainable.full_trainable_names(model) == ["base_model.model.lm_head.weight"]
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    assert layers and all(m.lora_dropout["default"].p == 0.05 for m in layers)
    assert model.peft_config["default"].lora_dropout == 0.05


def test_seed_004_lora_leaves_the_vision_tower_alone(tiny_path, tmp_path):
    model, _ = _peft_from_yaml(_tiny(tiny_path), "lora", tmp_path)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if ".lora_A." in n}
    assert adapted and not any(".visual." in n for n in adapted)
    assert {n.rsplit(".", 1)[-1] for n in adapted} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_hf_rollout_serves_the_adapter_verl_sends(tiny_path, tmp_path):
    """verl's adapter sync (merge=false): base weights first (`base_layer` names), then adapter tensors
    plus modules trained in full; the server's copy must then compute what the actor computes."""
    from peft.utils.save_and_load import get_peft_model_state_dict
    from verl.utils.fsdp_utils import replace_lora_wrapper

    from radgrpo.engine.hf_rollout import HFRolloutServer
    from radgrpo.export.verify import probe_inputs
    from radgrpo.export.family import load_processor

    actor, keys = _peft_from_yaml(_tiny(tiny_path), "lora_vision_lm_head", tmp_path)
    trainable.apply_spec(actor, trainable.TrainableSpec(lora_dropout=0.05, trainable_modules=("lm_head",)))
    with torch.no_grad():  # a trained state: adapter B no longer zero, lm_head moved
        for name, param in actor.named_parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn_like(param))
    actor.eval()
    peft_config = actor.peft_config["default"]

    server = HFRolloutServer.__new__(HFRolloutServer)  # only the weight path, no verl config needed
    server.model, server._lora_config, server.weight_version, server.global_steps = _tiny(tiny_path).eval(), None, 0, None
    base = {k.replace(".base_layer", ""): v for k, v in actor.base_model.model.state_dict().items() if "lora_" not in k}
    base = {replace_lora_wrapper(k, peft_config): v for k, v in base.items()}
    server.load_weights(base, 0, peft_config.to_dict(), base_sync_done=False)
    update = dict(get_peft_model_state_dict(actor))
    update["base_model.model.lm_head.weight"] = actor.base_model.model.lm_head.weight.detach().clone()
    assert server.load_weights(update, 1, peft_config.to_dict(), base_sync_done=True) == len(update)

    inputs = probe_inputs(load_processor(str(tiny_path)))
    with torch.no_grad():
        gap = (actor(**inputs).logits - server.model(**inputs).logits).abs().max().item()
    assert gap < 1e-5
    assert not server.model.training
