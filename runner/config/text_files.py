"""Reading the text files an experiment names: bounded in size, UTF-8 (a BOM is fine), one-line errors.

Every file the runner reads as text (the experiment, templates, context files) goes through here, so a
20 GB file or a Latin-1 template is one line naming the file, not a MemoryError or a traceback.
"""

from __future__ import annotations

from pathlib import Path

from runner.errors import ConfigError

# Far above any template or few-shot file (those in the repository are a few KB), and small enough
# that the densest JSON of this size (`[[],[],...]`) loads in under a second and ~150 MB. A dataset
# row has the same limit. (YAML has its own, smaller one: runner.config.safe_yaml.MAX_YAML_BYTES.)
MAX_DOCUMENT_BYTES = 4 * 2**20
UTF8_BOM = b"\xef\xbb\xbf"


def read_text(path: Path, *, what: str, limit: int = MAX_DOCUMENT_BYTES, fix: str = "shorten it or split it",
              config_file: Path | None = None, key: str | None = None) -> str:
    """The text of `path`, decoded as UTF-8 with an optional BOM, at most `limit` bytes. `what` names
    the kind of file in messages ("context file"); `config_file`/`key` say where the experiment names
    it (None: `path` is the experiment itself, so the message starts with `path`)."""
    where = config_file if config_file is not None else path
    subject = "the file" if config_file is None else str(path)
    with path.open("rb") as fh:
        data = fh.read(limit + 1)  # never more than the limit, whatever the file's size
    if len(data) > limit:
        raise ConfigError(f"{subject} is {path.stat().st_size:,} bytes, more than the {mib(limit)} allowed for "
                          f"{what}s", file=where, key=key, fix=fix)
    return decode_utf8(data, subject=subject, file=where, key=key)


def mib(size: int) -> str:
    return f"{size / 2**20:g} MiB"


def decode_utf8(data: bytes, *, subject: str, file: Path | str, key: str | None, offset: int = 0,
                line: int | None = None) -> str:
    """`data` as text; a byte that is not UTF-8 is one line naming it and its offset in the file."""
    try:
        return data.decode("utf-8-sig") if offset == 0 else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # utf-8-sig reports positions after the BOM it removed.
        skipped = len(data) - len(exc.object)
        at = offset + skipped + exc.start
        on_line = f", line {line}" if line is not None else ""
        raise ConfigError(f"{subject} is not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {at}{on_line})",
                          file=file, key=key, fix="save it as UTF-8") from None
