"""Size classes: a model's parameter count as written in the YAML, as read from a GGUF, and its class."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter

from conftest import Project, base_experiment, smollm_path
from runner.backends.llamacpp.gguf_info import read_gguf_info
from runner.cli import main
from runner.config.size_class import parse_params, size_class
from runner.testing.fakes import FakeModel, FakeOllama, ThreadedApp


@pytest.mark.parametrize(("written", "count"), [
    ("135M", 135_000_000), ("1.7B", 1_700_000_000), ("0.5b", 500_000_000), ("494m", 494_000_000),
    (134_515_008, 134_515_008), ("7B", 7_000_000_000), (" 360 M ", 360_000_000),
])
def test_a_count_is_read_as_a_model_card_writes_it(written: object, count: int) -> None:
    assert parse_params(written) == count


@pytest.mark.parametrize("written", ["1.7 billion", "B", "", "-1B", True, 0, "0.0001K"])
def test_anything_else_is_refused(written: object) -> None:
    refused = re.escape("is not a parameter count; write it as 135M, 1.7B or a whole number")
    with pytest.raises(ValueError, match=refused):
        parse_params(written)


@pytest.mark.parametrize(("written", "fix"), [(1.7, "1.7B (billion) or 1.7M (million)"),
                                              (7, "7B (billion) or 7M (million)"),
                                              ("0.5", "0.5B (billion) or 0.5M (million)")])
def test_a_bare_number_below_a_million_is_a_forgotten_suffix(project: Project, capsys: pytest.CaptureFixture[str],
                                                             written: object, fix: str) -> None:
    # `params: 1.7` was stored as 2 parameters (class <=1B) and `params: 7` as 7.
    exp = base_experiment()
    exp["models"] = [{"name": "m", "id": "m", "params": written}]
    path = project.write(exp)
    assert main(["validate", str(path), "--offline"]) == 2
    assert capsys.readouterr().err == (
        f"runner: {path}: models[0].params: {written!r} is a bare number below 1,000,000, a count of single "
        f"parameters; write {fix}\n")


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


def _gguf(path: Path, label: str | None, output: bool) -> Path:
    """A GGUF with a 1000 x 64 token embedding, 50,000 other elements, and maybe an output matrix of the
    embedding's shape."""
    writer = GGUFWriter(str(path), "llama")
    if label is not None:
        writer.add_string("general.size_label", label)
    writer.add_tensor("token_embd.weight", np.zeros((1000, 64), np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", np.zeros((500, 100), np.float32))
    if output:
        writer.add_tensor("output.weight", np.zeros((1000, 64), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize(("label", "output", "count"), [
    # Qwen2.5's case: the label (here 114K, for 64,000 + 50,000) says the output matrix is the tied
    # embedding stored again: it is not counted twice.
    ("114K", True, 114_000),
    # An untied model (Llama's): the label is nearer the count with the output matrix.
    ("180K", True, 178_000),
    # No label to decide by: every tensor, as llama.cpp's n_params counts.
    (None, True, 178_000),
    ("114K", False, 114_000),
])
def test_an_output_matrix_shaped_as_the_embedding_counts_as_the_size_label_says(
        tmp_path: Path, label: str | None, output: bool, count: int) -> None:
    path = _gguf(tmp_path / "m.gguf", label, output)
    assert sum(int(t.n_elements) for t in GGUFReader(path).tensors) == 114_000 + 64_000 * output
    assert read_gguf_info(path).parameters == count


def test_ollama_s_exact_count_wins_then_its_label_then_the_yaml_s(project: Project) -> None:
    fake = FakeOllama([FakeModel("big:exact", "Q8_0", 8192, parameter_size="1.7B", parameter_count=1_711_376_384),
                       FakeModel("big:rounded", "Q8_0", 8192, parameter_size="1.7B"),
                       FakeModel("big:silent", "Q8_0", 8192, parameter_size="")])
    exp = base_experiment()
    exp.update(models=[{"name": "exact", "id": "big:exact", "params": "135M"}, {"name": "rounded", "id": "big:rounded"},
                       {"name": "silent", "id": "big:silent", "params": "3.8B"}],
               sampling={"temperature": 0.0, "max_tokens": 8}, repeats=1)
    with ThreadedApp(fake.app) as server:
        exp["backend"] = {"kind": "ollama", "base_url": server.url, "max_retries": 0}
        path = project.write(exp)
        assert main(["run", str(path), "--quiet", "--no-report", "--limit", "1"]) == 0
    with sqlite3.connect(project.store_path()) as conn:
        stored = {m: json.loads(v) for m, v in conn.execute("SELECT model, variant_json FROM jobs")}
    sizes = {m: (v["parameters"], v["parameters_source"], v["size_class"], v.get("parameters_declared"))
             for m, v in stored.items()}
    assert sizes == {
        # What the server reports wins; a declaration that disagrees is kept beside it, to be seen.
        "exact": (1_711_376_384, "Ollama /api/show general.parameter_count", "1-3B", 135_000_000),
        "rounded": (1_700_000_000, "Ollama /api/show parameter_size", "1-3B", None),
        "silent": (3_800_000_000, "declared (models[].params)", "3B+", 3_800_000_000),
    }
