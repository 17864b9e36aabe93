"""The image half of `qwen_vl_utils`, without torchvision.

verl loads every image of a multimodal row through `qwen_vl_utils` (`process_vision_info`,
`fetch_image`), and that package imports torchvision at module level - which cannot be installed on
CPU machines here. Its image path is plain PIL, so this module reproduces it (qwen-vl-utils 0.0.14:
open from a path / file:// URL / data URL / bytes / PIL image, convert to RGB, resize so both sides
are multiples of patch x merge within [min_pixels, max_pixels]). Videos need torchvision's decoders
and raise a clear error. The plugin installs this module as `qwen_vl_utils` only when torchvision is
absent; with torchvision (GPU clusters) the real package is used.
"""

from __future__ import annotations

import base64
import math
from io import BytesIO
from typing import Any

from PIL import Image

SPATIAL_MERGE_SIZE = 2
IMAGE_MIN_TOKEN_NUM = 4
IMAGE_MAX_TOKEN_NUM = 16384
MAX_RATIO = 200


def smart_resize(height: int, width: int, factor: int, min_pixels: int | None = None,
                 max_pixels: int | None = None) -> tuple[int, int]:
    """Height and width divisible by `factor`, pixel count within bounds, aspect ratio kept."""
    max_pixels = max_pixels if max_pixels is not None else IMAGE_MAX_TOKEN_NUM * factor**2
    min_pixels = min_pixels if min_pixels is not None else IMAGE_MIN_TOKEN_NUM * factor**2
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"absolute aspect ratio must be smaller than {MAX_RATIO}, got {height}x{width}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _open(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (bytes, bytearray)):
        return Image.open(BytesIO(image))
    if isinstance(image, str):
        if image.startswith(("http://", "https://")):
            raise ValueError(f"radgrpo reads images from files, not URLs: {image}")
        if image.startswith("file://"):
            return Image.open(image[len("file://"):])
        if image.startswith("data:image") and "base64," in image:
            return Image.open(BytesIO(base64.b64decode(image.split("base64,", 1)[1])))
        return Image.open(image)
    raise ValueError(f"unrecognised image input of type {type(image).__name__}")


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.split()[3])
        return background
    return image.convert("RGB")


def fetch_image(ele: dict[str, Any], image_patch_size: int = 14) -> Image.Image:
    source = ele.get("image", ele.get("image_url"))
    if source is None and "bytes" in ele:
        source = ele["bytes"]
    image = to_rgb(_open(source))
    factor = image_patch_size * SPATIAL_MERGE_SIZE
    if "resized_height" in ele and "resized_width" in ele:
        height, width = smart_resize(ele["resized_height"], ele["resized_width"], factor=factor)
    else:
        height, width = smart_resize(image.height, image.width, factor=factor,
                                     min_pixels=ele.get("min_pixels"), max_pixels=ele.get("max_pixels"))
    return image.resize((width, height))


def extract_vision_info(conversations: list) -> list[dict[str, Any]]:
    if conversations and isinstance(conversations[0], dict):
        conversations = [conversations]
    infos = []
    for conversation in conversations:
        for message in conversation:
            if isinstance(message["content"], list):
                for ele in message["content"]:
                    if ("image" in ele or "image_url" in ele or "video" in ele
                            or ele.get("type", "text") in ("image", "image_url", "video")):
                        infos.append(ele)
    return infos


def fetch_video(*_args, **_kwargs):
    raise NotImplementedError("video inputs need torchvision, which is not installed (CPU install path)")


def process_vision_info(conversations: list, return_video_kwargs: bool = False,
                        return_video_metadata: bool = False, image_patch_size: int = 14):
    images = []
    for info in extract_vision_info(conversations):
        if "video" in info:
            fetch_video(info)
        images.append(fetch_image(info, image_patch_size=image_patch_size))
    result = (images or None, None)
    return (*result, {"do_sample_frames": False}) if return_video_kwargs else result
