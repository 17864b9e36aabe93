"""Workarounds for verl 0.9.1 bugs radgrpo's runs hit, each active only in the broken case.

3-D (mrope) position ids of Qwen-VL models travel between verl's workers as jagged nested tensors of
per-sample (channels, length) tensors, ragged along the length (`_ragged_idx = 2`). When every sample
of a batch has the same length, `torch.nested.as_nested_tensor` (in verl's
`list_of_dict_to_tensordict`) cannot tell which dimension is ragged and stacks them ragged along the
channels instead; verl's `maybe_fix_3d_position_ids` then relabels the ragged dimension without
moving the data, and the next `unbind` fails with "split_with_sizes expects split_sizes to sum
exactly to ...". The replacement below rebuilds such a tensor with the correct layout; tensors that
are already laid out along the length are only relabelled, as verl does.
"""

from __future__ import annotations

import torch


def _ragged_along_channels(position_ids: torch.Tensor) -> bool:
    """True when the values were concatenated along the channel axis (the broken layout)."""
    values, offsets = position_ids.values(), position_ids.offsets()
    return values.dim() == 2 and values.shape[0] == int(offsets[-1]) and values.shape[0] != values.shape[1]


def maybe_fix_3d_position_ids(data) -> None:
    from verl.utils.tensordict_utils import nested_tensor_from_tensor_list

    if "position_ids" not in data.keys():
        return
    position_ids = data["position_ids"]
    if position_ids.dim() != 3 or not position_ids.is_nested:
        return
    if _ragged_along_channels(position_ids):
        values, offsets = position_ids.values(), position_ids.offsets().tolist()
        samples = [values[start:end] for start, end in zip(offsets[:-1], offsets[1:])]
        data["position_ids"] = nested_tensor_from_tensor_list(samples, ragged_idx=2)
    else:
        position_ids._ragged_idx = 2


def install() -> None:
    """Replace verl's function before its workers import it by name."""
    from verl.utils import tensordict_utils

    tensordict_utils.maybe_fix_3d_position_ids = maybe_fix_3d_position_ids
