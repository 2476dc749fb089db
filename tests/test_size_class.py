"""Size classes: a model's parameter count as written in the YAML, as read from a GGUF, and its class."""

from __future__ import annotations

import re

import pytest
from gguf import GGUFReader

from conftest import smollm_path
from runner.backends.llamacpp.gguf_info import read_gguf_info
from runner.config.size_class import parse_params, size_class


@pytest.mark.parametrize(("written", "count"), [
    ("135M", 135_000_000), ("1.7B", 1_700_000_000), ("0.5b", 500_000_000), ("494m", 494_000_000),
    (134_515_008, 134_515_008), ("7B", 7_000_000_000), (" 360 M ", 360_000_000),
])
def test_a_count_is_read_as_a_model_card_writes_it(written: object, count: int) -> None:
    assert parse_params(written) == count


@pytest.mark.parametrize("written", ["1.7 billion", "B", "", "-1B", True, 0, 0.4])
def test_anything_else_is_refused(written: object) -> None:
    refused = re.escape("is not a parameter count; write it as 135M, 1.7B or a whole number")
    with pytest.raises(ValueError, match=refused):
        parse_params(written)


@pytest.mark.parametrize(("count", "cls"), [
    (134_515_008, "<=1B"), (1_000_000_000, "<=1B"), (1_000_000_001, "1-3B"), (1_700_000_000, "1-3B"),
    (3_000_000_000, "1-3B"), (3_000_000_001, "3B+"), (None, "unknown"),
])
def test_the_analysis_classes_include_their_upper_bound(count: int | None, cls: str) -> None:
    assert size_class(count) == cls


def test_the_gguf_count_is_gguf_py_s_sum_of_tensor_elements() -> None:
    info = read_gguf_info(smollm_path())
    reader = GGUFReader(smollm_path())  # parses every tensor: the reference, slow (seconds)
    assert info.parameters == sum(int(t.n_elements) for t in reader.tensors) == 134_515_008
    assert info.size_label == "135M" and size_class(info.parameters) == "<=1B"
