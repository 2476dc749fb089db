"""Read a GGUF file's metadata header: architecture, context length, quantization type, parameters.

gguf-py's GGUFReader parses every tensor and token (about 2 s for SmolLM2); a run only needs a
few scalar keys, so this reads the key-value header and skips arrays by seeking (milliseconds).
The parameter count is the sum of the tensor infos' element counts (the shapes that follow the
header; the weights themselves are not read), which is what a model card's "135M" counts;
`general.size_label` is the converter's own label for it, kept beside it where the file has one.
One exception: a file may store the output matrix (`output.weight`) apart from a tied token
embedding of the same shape (Qwen2.5's GGUFs do, quantized differently: 630M elements for the 494M
model; llama.cpp's n_params counts both), while an untied model (Llama's) has a real second matrix
of that shape. The shapes cannot tell them apart, so the size label decides: the output matrix is
left out when the count without it is the nearer to the label, and counted without a label.
Type names come from gguf-py's LlamaFileType, llama.cpp's own enum.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from gguf import LlamaFileType

from runner.config.size_class import parse_params

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
            12: "<d"}
_STRING, _ARRAY = 8, 9


class NotGGUF(ValueError):
    pass


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    size_bytes: int
    architecture: str | None
    name: str | None
    context_length: int | None
    file_type: int | None
    # The model's own chat template (HF Jinja2) and the special tokens it refers to, where the file has them.
    chat_template: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    parameters: int | None = None  # elements of all tensors
    size_label: str | None = None  # general.size_label, e.g. "135M"

    @property
    def quantization(self) -> str | None:
        """llama.cpp's name of the file type, e.g. Q4_K_M, Q8_0, F16."""
        return file_type_name(self.file_type) if self.file_type is not None else None


def file_type_name(value: int) -> str:
    try:
        name = LlamaFileType(value).name
    except ValueError:
        return f"type{value}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def file_type_value(name: str) -> int | None:
    """The llama_ftype number for a user's spelling (q4_k_m, Q8_0, f16), or None if unknown."""
    wanted = name.strip().upper()
    for member in LlamaFileType:
        if member.name.removeprefix("MOSTLY_").removeprefix("ALL_") == wanted and member.name != "GUESSED":
            return int(member.value)
    return None


def known_file_types() -> list[str]:
    return [m.name.removeprefix("MOSTLY_").removeprefix("ALL_") for m in LlamaFileType if m.name != "GUESSED"]


def read_gguf_info(path: Path) -> GGUFInfo:
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise NotGGUF(f"{path} is not a GGUF file (no GGUF magic bytes)")
        version, = struct.unpack("<I", fh.read(4))
        if version < 2:
            raise NotGGUF(f"{path} is GGUF version {version}; llama.cpp reads version 2 and later")
        n_tensors, kv_count = struct.unpack("<QQ", fh.read(16))
        meta: dict[str, Any] = {}
        for _ in range(kv_count):
            key = _read_string(fh)
            vtype, = struct.unpack("<I", fh.read(4))
            meta[key] = _read_value(fh, vtype)
        parameters, duplicate = _count_elements(fh, n_tensors)
    arch = meta.get("general.architecture")
    ctx = meta.get(f"{arch}.context_length") if arch else None
    tokens = meta.get("tokenizer.ggml.tokens")

    def token(key: str) -> str | None:
        index = meta.get(key)
        return str(tokens[index]) if isinstance(tokens, list) and isinstance(index, int) and index < len(tokens) \
            else None

    template = meta.get("tokenizer.chat_template")
    label = meta.get("general.size_label")
    parameters = _without_tied_output(parameters, duplicate, label if isinstance(label, str) else None)
    return GGUFInfo(path, path.stat().st_size, arch, meta.get("general.name"),
                    int(ctx) if ctx is not None else None,
                    int(meta["general.file_type"]) if "general.file_type" in meta else None,
                    template if isinstance(template, str) else None,
                    token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id"),
                    parameters, label if isinstance(label, str) else None)


def _count_elements(fh: BinaryIO, n_tensors: int) -> tuple[int | None, int]:
    """Sum of the tensors' element counts, from the tensor infos (name, dims, type, offset each), and
    the elements of an output matrix shaped as the token embedding (0 if none). The sum is None for a
    file without tensors (a vocabulary-only GGUF has no parameters to count)."""
    total = 0
    shapes: dict[str, tuple[int, ...]] = {}
    for _ in range(n_tensors):
        name = _read_string(fh)
        n_dims, = struct.unpack("<I", fh.read(4))
        dims = struct.unpack(f"<{n_dims}Q", fh.read(8 * n_dims))
        fh.seek(4 + 8, 1)  # the type and the data offset
        total += math.prod(dims)
        if name in ("token_embd.weight", "output.weight"):
            shapes[name] = dims
    output = shapes.get("output.weight")
    same = output is not None and output == shapes.get("token_embd.weight")
    return total or None, math.prod(output) if same and output is not None else 0


def _without_tied_output(total: int | None, duplicate: int, label: str | None) -> int | None:
    """The count without the output matrix where the size label says it is the tied embedding again."""
    if total is None or not duplicate or label is None:
        return total
    try:
        labelled = parse_params(label)
    except ValueError:
        return total  # "8x7B" and the like: not one count to compare with
    return total - duplicate if abs(total - duplicate - labelled) < abs(total - labelled) else total


def _read_string(fh: BinaryIO) -> str:
    n, = struct.unpack("<Q", fh.read(8))
    return fh.read(n).decode("utf-8", "replace")


def _read_value(fh: BinaryIO, vtype: int) -> Any:
    if vtype in _SCALARS:
        fmt = _SCALARS[vtype]
        return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0]
    if vtype == _STRING:
        return _read_string(fh)
    if vtype == _ARRAY:
        etype, count = struct.unpack("<IQ", fh.read(12))
        if etype in _SCALARS:
            fh.seek(struct.calcsize(_SCALARS[etype]) * count, 1)
        else:
            for _ in range(count):
                _read_value(fh, etype)
        return None  # arrays (token lists) are skipped: nothing here needs them
    raise NotGGUF(f"unknown GGUF value type {vtype}")
