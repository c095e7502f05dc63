"""Crash-safe file writes: a crash leaves either the old file or the new one, never half of one.

Data goes to a temporary file in the target's directory, which is flushed and fsynced, renamed
over the target with :func:`os.replace` and followed by an fsync of the directory (so the rename
itself is durable). On any failure the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# Filesystems that cannot fsync a directory answer with one of these; the rename still happened.
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def fsync_dir(directory: str | Path) -> None:
    """Fsync ``directory`` so a rename inside it survives a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the ``with`` block ends without error.

    ``mode`` is ``"wb"`` or ``"w"`` (``encoding``/``newline`` apply to text mode). Parent
    directories are created. ``torch.save(obj, fh)`` can write into the yielded file."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    text = {} if mode == "wb" else {"encoding": encoding, "newline": newline}
    # "x": create exclusively (never reuse an existing file), with the umask's usual mode.
    fh = open(tmp, mode.replace("w", "x"), **text)  # noqa: SIM115 - closed below
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Atomically and durably replace ``path`` with ``data``; returns ``path``."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Atomically and durably replace ``path`` with ``text``; returns ``path``."""
    return write_bytes_atomic(path, text.encode(encoding))
