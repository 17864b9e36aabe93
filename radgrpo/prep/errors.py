"""The two ways a record or a run can fail, kept apart on purpose.

`Drop` is a per-record verdict: the pipeline catches it, counts the record under `reason` and goes
on (or, with `strict=true`, collects it for the final error). `PrepError` is a mistake the user can
fix (missing input, unknown source, bad option): the CLI prints its message as one line and exits.
"""

from __future__ import annotations

from radgrpo.errors import UserError


class PrepError(UserError):
    """A user error; its message names the thing to fix."""


class Drop(Exception):
    """A record that cannot become a row. `reason` is a short stable key counted in the manifest."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# Reasons that mean "the record is broken" (strict=true fails on these) ...
MALFORMED = (
    "invalid_json",        # the element is not valid JSON
    "truncated_input",     # the input ends inside a record
    "not_a_record",        # the element is not an object/dict
    "bad_field_type",      # a field has the wrong type (e.g. image is a number)
    "bad_conversations",   # no human/gpt turn pair, or turns of the wrong shape
    "empty_question",
    "empty_answer",
    "no_image",            # the record references no image
    "image_placeholder_mismatch",  # more/fewer <image> tags than images
    "image_missing",       # a referenced image file does not exist
    "image_corrupt",       # a referenced image cannot be decoded
    "box_malformed",       # a bracketed box without exactly four numbers
    "box_out_of_range",    # a coordinate outside [0, 1]
    "box_inverted",        # x2 < x1 or y2 < y1
    "box_empty",           # x1 == x2 or y1 == y2: zero area, no IoU can ever credit it
    "no_boxes",            # a grounding answer with neither boxes nor a "no finding" statement
    "bad_options",         # MCQA options unusable or the answer label not among them
    "bad_unicode",         # undecodable bytes or lone surrogates in a text field
)
# ... and reasons that mean "the record is fine but not wanted here" (never an error).
FILTERED = ("dataset_filter", "other_task", "prompt_too_long", "prompt_tokens_over_limit")
