"""The streaming JSON reader returns exactly what json.load would, in bounded memory."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from radgrpo.prep.errors import Drop
from radgrpo.prep.jsonstream import JsonStream

_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                       max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(_values, max_size=30), st.sampled_from([None, 2, 4]), st.integers(7, 64))
def test_list_layout_equals_json_load_at_any_chunk_size(tmp_path_factory, items, indent, chunk):
    path = tmp_path_factory.mktemp("js") / "x.json"
    path.write_text(json.dumps(items, indent=indent, ensure_ascii=False))
    stream = JsonStream(path, chunk_size=chunk)
    assert [v for _, v in stream] == items
    assert stream.bytes_read == path.stat().st_size


def test_dict_and_jsonl_layouts(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"a": {"q": 1}, "b": {"q": 2}}, indent=3))
    assert list(JsonStream(tmp_path / "d.json", chunk_size=5)) == [("a", {"q": 1}), ("b", {"q": 2})]
    (tmp_path / "l.jsonl").write_text('{"q": 1}\n\n{"q": 2\n{"q": 3}\n')
    got = list(JsonStream(tmp_path / "l.jsonl", chunk_size=4))
    assert got[0] == (0, {"q": 1}) and got[2] == (2, {"q": 3})
    assert isinstance(got[1][1], Drop) and got[1][1].reason == "invalid_json"


def test_broken_elements_are_skipped_and_reading_resumes(tmp_path):
    text = '[\n  {"a": 1},\n  {"a": 2, oops},\n  {"a": [1, 2}, "z": 0},\n  {"a": 4},\n  {"a": "\\u00e9"}\n]'
    (tmp_path / "b.json").write_text(text)
    got = [v for _, v in JsonStream(tmp_path / "b.json", chunk_size=8)]
    assert got[0] == {"a": 1} and got[-2:] == [{"a": 4}, {"a": "é"}]
    assert [d.reason for d in got[1:3]] == ["invalid_json", "invalid_json"]


def test_memory_is_bounded_by_the_chunk_not_the_file(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps([{"i": i, "pad": "x" * 100} for i in range(20000)]))
    stream = JsonStream(path, chunk_size=1 << 14)
    it = iter(stream)
    next(it)
    assert stream.bytes_read <= 2 << 14  # one chunk (plus one) read to yield the first record
    assert sum(1 for _ in it) == 19999
