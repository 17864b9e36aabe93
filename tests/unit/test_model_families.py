"""Model families: the registry, the GPU plans of the real model options, and the padded batch merge."""

from __future__ import annotations

import pytest
import torch

from radgrpo.engine.family_hooks import _merge_for
from radgrpo.models.families import FAMILIES, get_family
from radgrpo.runs.plan import ConfigError, plan_run

from .test_config_tree import compose_train

LAYERS_ONLY = {"llava_onevision_7b": ["Qwen2DecoderLayer", "SiglipEncoderLayer"],
               "llava_onevision_0_5b": ["Qwen2DecoderLayer", "SiglipEncoderLayer"]}


def test_every_family_is_complete():
    for name in FAMILIES:
        family = get_family(name)
        assert family.name == name and family.model_class and family.image_token and family.end_of_turn
        assert family.image_token in family.suppress_tokens
        assert family.tiny_models, name


@pytest.mark.parametrize("option, path", [
    ("qwen2_5_vl_3b", "Qwen/Qwen2.5-VL-3B-Instruct"),
    ("qwen2_5_vl_7b", "Qwen/Qwen2.5-VL-7B-Instruct"),
    ("medgemma_4b", "google/medgemma-4b-it"),
    ("llava_onevision_7b", "llava-hf/llava-onevision-qwen2-7b-ov-hf"),
    ("llava_onevision_0_5b", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"),
])
def test_real_model_options_plan_a_vllm_gpu_run_verl_accepts(option, path, tmp_path):
    # what `radgrpo model=<option> cluster.device=cuda dry_run=true` plans; plan_run ends with verl's
    # own validate_config
    plan = plan_run(compose_train([f"model={option}", "cluster.device=cuda"], tmp_path))
    verl = plan.verl_config
    assert plan.device == "cuda" and verl.actor_rollout_ref.rollout.name == "vllm"
    assert verl.actor_rollout_ref.model.path == path
    if option in LAYERS_ONLY:
        for role in ("actor", "ref"):
            wrap = verl.actor_rollout_ref[role].fsdp_config.wrap_policy.transformer_layer_cls_to_wrap
            assert list(wrap) == LAYERS_ONLY[option]
    if option == "medgemma_4b":  # bidirectional image attention needs the 4-D mask
        assert verl.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
        assert verl.actor_rollout_ref.model.use_remove_padding is False


def test_a_family_vllm_cannot_serve_stops_a_gpu_plan_with_one_line(tmp_path):
    with pytest.raises(ConfigError, match="phi4_multimodal cannot train on GPUs yet") as error:
        plan_run(compose_train(["model=phi4_multimodal", "cluster.device=cuda"], tmp_path))
    assert "\n" not in str(error.value)
    plan = plan_run(compose_train(["model=tiny_phi4_multimodal", "cluster.device=cpu"], tmp_path))
    assert plan.family == "phi4_multimodal" and plan.verl_config.actor_rollout_ref.rollout.name == "hf"


def test_unknown_family_and_foreign_tiny_model_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="model.family 'nope' is unknown; known: "):
        plan_run(compose_train(["model.family=nope"], tmp_path))
    with pytest.raises(ConfigError, match="not a tiny model of family gemma3"):
        plan_run(compose_train(["model.family=gemma3"], tmp_path))


def test_merge_pads_per_image_patch_counts_to_the_micro_batch_largest():
    """Samples of two aspect ratios (5 vs 3 anyres patches / crops) merge; padding is zeros for pixels
    and ones for crop masks (as the image processors pad within one call), real values untouched."""
    captured = {}

    def stock(samples):
        captured["samples"] = samples
        return {key: torch.cat([s[key] for s in samples]) for key in samples[0]}

    wide, square = torch.rand(1, 3, 3, 4, 4), torch.rand(1, 5, 3, 4, 4)
    merged = _merge_for(get_family("llava_onevision"), stock)([{"pixel_values": wide}, {"pixel_values": square}])
    assert merged["pixel_values"].shape == (2, 5, 3, 4, 4)
    assert torch.equal(merged["pixel_values"][0, :3], wide[0]) and not merged["pixel_values"][0, 3:].any()

    mask = torch.zeros(1, 2, 4, 4)
    merged = _merge_for(get_family("phi4_multimodal"), stock)(
        [{"image_pixel_values": torch.rand(1, 2, 3, 4, 4), "image_attention_mask": mask},
         {"image_pixel_values": torch.rand(1, 3, 3, 4, 4), "image_attention_mask": torch.zeros(1, 3, 4, 4)}])
    assert merged["image_attention_mask"].shape == (2, 3, 4, 4)
    assert merged["image_attention_mask"][0, 2].eq(1).all() and not merged["image_attention_mask"][0, :2].any()

    same = [{"pixel_values": torch.rand(1, 3, 3, 4, 4)}, {"pixel_values": torch.rand(1, 3, 3, 4, 4)}]
    assert _merge_for(get_family("llava_onevision"), stock)(same)["pixel_values"].shape == (2, 3, 3, 4, 4)


def test_phi4_torchvision_free_processor_feeds_the_model_for_two_aspect_ratios(tmp_path):
    """The torchvision-free image processor's token counts match what the model's image embedding
    consumes, for a square and a 2:1 image in one padded batch, and it reloads as itself."""
    from PIL import Image

    from radgrpo.models.families.phi4_multimodal import Phi4MultimodalImageProcessorPil, Phi4MultimodalProcessor

    family = get_family("phi4_multimodal")
    model, processor = family.tiny_parts()
    prompt = "<|user|><|image|>Where?<|end|><|assistant|>"
    batch = processor(text=[prompt, prompt], images=[Image.new("RGB", (112, 112), 90), Image.new("RGB", (112, 56), 90)],
                      return_tensors="pt", padding=True)
    assert (batch["input_ids"] == processor.image_token_id).sum(-1).tolist() == [545, 409]
    assert batch["image_pixel_values"].shape[:2] == (2, 2)
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()
    processor.save_pretrained(tmp_path)
    reloaded = Phi4MultimodalProcessor.from_pretrained(tmp_path)
    assert type(reloaded.image_processor) is Phi4MultimodalImageProcessorPil and reloaded.chat_template


def test_phi4_image_features_do_not_depend_on_the_other_images_of_the_batch():
    """transformers' Phi-4-MM vision attention is causal under sdpa when no image of the batch has a
    padded crop, bidirectional otherwise; the family's patch makes it bidirectional always, so a square
    image's logits alone and beside a 2:1 image (padded crops) agree - as the hf rollout's batch and the
    actor's micro-batch must. Without the patch: logits 0.63 apart here."""
    from PIL import Image

    family = get_family("phi4_multimodal")
    model, processor = family.tiny_parts()  # builds the model after applying the family's patch
    vision = [m for n, m in model.named_modules() if type(m).__name__ == "Phi4MultimodalVisionAttention"]
    assert len(vision) == 2 and not any(m.is_causal for m in vision)
    prompt = "<|user|><|image|>Where?<|end|><|assistant|>"
    square = Image.fromarray(torch.randint(0, 256, (112, 112, 3), generator=torch.Generator().manual_seed(0),
                                           dtype=torch.uint8).numpy())
    alone = processor(text=[prompt], images=[square], return_tensors="pt")
    pair = processor(text=[prompt, prompt], images=[square, Image.new("RGB", (112, 56), 90)], return_tensors="pt",
                     padding=True)
    assert alone["image_attention_mask"].all() and not pair["image_attention_mask"].all()
    length = alone["input_ids"].shape[1]
    assert torch.equal(pair["input_ids"][0, :length], alone["input_ids"][0])
    with torch.no_grad():
        by_itself = model(**alone).logits[0]
        in_pair = model(**pair).logits[0, :length]
    assert (by_itself - in_pair).abs().max() < 1e-4


# where each family's language model lives, in its real architecture
LANGUAGE_MODEL = {"qwen2_5_vl": "model.language_model.", "gemma3": "model.language_model.",
                  "llava_onevision": "model.language_model.", "phi4_multimodal": "model.layers."}


def _meta_model(family):
    """The family's model class at its transformers default size (the real layout), on the meta device."""
    import transformers

    with torch.device("meta"):
        return getattr(transformers, family.model_class)(transformers.AutoConfig.for_model(family.model_type))


def _lora_config(option, name, model, tmp_path):
    """peft's LoraConfig for peft option `option` in a run of family `name`, with `all-linear` expanded
    on `model` as peft does when it wraps a model."""
    from peft import LoraConfig
    from peft.tuners.tuners_utils import _maybe_include_all_linear_layers

    from .test_peft import peft_keys

    keys = peft_keys(option, name, tmp_path)
    target = keys.target_modules if isinstance(keys.target_modules, str) else list(keys.target_modules)
    config = LoraConfig(r=keys.lora_rank, target_modules=target, exclude_modules=keys.exclude_modules)
    return _maybe_include_all_linear_layers(config, model), keys


def _under(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_vision_samples_and_the_lora_options_fit_its_real_layout(name, tmp_path):
    """Each family's vision_linear_samples are linear layers of its real architecture, inside its
    vision_modules; peft's own matching of `peft=lora` adapts the language model's projections only
    (which planning's lora_reaches_vision agrees with), `peft=lora_vision_lm_head` every linear layer of
    the vision side and nothing else (not Phi-4-MM's language model or audio tower), and
    `peft=freeze_vision` finds one tower, inside the vision side."""
    from peft.tuners.tuners_utils import check_target_module_exists

    from radgrpo.engine.trainable import lora_reaches_vision, vision_tower_prefixes

    family = get_family(name)
    model = _meta_model(family)
    modules = dict(model.named_modules())
    assert all(isinstance(modules.get(s), torch.nn.Linear) for s in family.vision_linear_samples)
    assert all(_under(s, family.vision_modules) for s in family.vision_linear_samples)
    linear = [n for n, m in modules.items() if isinstance(m, torch.nn.Linear)]

    config, keys = _lora_config("lora", name, model, tmp_path)
    adapted = [n for n in linear if check_target_module_exists(config, n)]
    assert adapted and all(n.startswith(LANGUAGE_MODEL[name]) for n in adapted), adapted[:5]
    assert not any(check_target_module_exists(config, s) for s in family.vision_linear_samples)
    assert not lora_reaches_vision(name, keys.target_modules, keys.exclude_modules)
    # every attention and MLP projection of the language model's first layer carries an adapter
    first = LANGUAGE_MODEL[name] + "layers.0." if name != "phi4_multimodal" else "model.layers.0."
    projections = [n for n in linear if n.startswith(first)]
    assert projections and set(projections) <= set(adapted)

    config, keys = _lora_config("lora_vision_lm_head", name, model, tmp_path)
    assert lora_reaches_vision(name, keys.target_modules, keys.exclude_modules)
    adapted = {n for n in linear if check_target_module_exists(config, n)}
    vision_linear = {n for n in linear if _under(n, family.vision_modules)}
    assert vision_linear and adapted == vision_linear, sorted(adapted ^ vision_linear)[:5]

    (tower,) = vision_tower_prefixes(model, family.vision_tower[1])
    assert _under(tower, family.vision_modules) and tower == VISION_TOWER[name]


# where each family's vision tower (what peft=freeze_vision freezes) lives, in its real architecture
VISION_TOWER = {"qwen2_5_vl": "model.visual", "gemma3": "model.vision_tower", "llava_onevision": "model.vision_tower",
                "phi4_multimodal": "model.embed_tokens_extend.image_embed.img_processor"}


def test_phi4_lora_options_and_freezing_on_the_tiny_model(tmp_path):
    """On the tiny Phi-4-MM (its real classes, built offline): `lora_vision_lm_head` adapts the image
    tower and projection only - no adapter on the language model or the audio tower - and
    `freeze_vision` freezes exactly the image tower (img_processor); `lora` adapts neither tower."""
    from peft import LoraConfig, get_peft_model

    from radgrpo.engine import trainable

    from .test_peft import peft_keys

    family = get_family("phi4_multimodal")
    audio, image = "model.embed_tokens_extend.audio_embed.", "model.embed_tokens_extend.image_embed."
    model, _ = family.tiny_parts()
    keys = peft_keys("lora_vision_lm_head", family.name, tmp_path)
    vision_lora = get_peft_model(model, LoraConfig(r=keys.lora_rank, target_modules=keys.target_modules,
                                                   exclude_modules=keys.exclude_modules))
    trainable.apply_spec(vision_lora, trainable.TrainableSpec(trainable_modules=tuple(keys.lora.trainable_modules)))
    trained = [n.removeprefix("base_model.model.") for n, p in vision_lora.named_parameters() if p.requires_grad]
    assert any(n.startswith(image + "img_processor.encoder.layers.0.self_attn.qkv") or
               n.startswith(image + "img_processor.encoder.layers.0.self_attn.q_proj.lora_A") for n in trained)
    assert any(n.startswith(image + "img_projection_up.lora_A") for n in trained)
    assert all((".lora_" in n and n.startswith(image)) or n == "lm_head.weight" for n in trained), trained[:5]
    assert not any(".lora_" in n and n.startswith(audio) for n, _ in vision_lora.named_parameters())

    model, _ = family.tiny_parts()
    trainable.apply_spec(model, trainable.TrainableSpec(freeze_vision_tower=True), family)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(image + "img_processor.") for n in frozen)
    assert len(frozen) == len([n for n, _ in model.named_parameters() if n.startswith(image + "img_processor.")])

    model, _ = family.tiny_parts()
    keys = peft_keys("lora", family.name, tmp_path)
    language_lora = get_peft_model(model, LoraConfig(r=keys.lora_rank, target_modules=list(keys.target_modules),
                                                     exclude_modules=keys.exclude_modules))
    adapted = {n.split(".lora_A")[0].removeprefix("base_model.model.") for n, _ in language_lora.named_parameters()
               if ".lora_A." in n}
    assert adapted and all(n.startswith("model.layers.") for n in adapted), sorted(adapted)[:5]
