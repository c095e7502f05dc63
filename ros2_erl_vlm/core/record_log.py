"""Append-only, crash-safe record log: the storage under every rating and rater cache.

Each record is one JSON-able ``meta`` dict plus named numpy arrays, framed as::

    b"ERLR" | u32 payload_len | u32 crc32(payload) | payload
    payload = u32 meta_len | meta JSON (utf-8) | array bytes (optionally zlib-compressed)

Guarantees:

* ``append`` writes one whole record, flushes and (by default) fsyncs before returning, so a
  record that ``append`` returned for survives a crash of the process.
* A crash in the middle of a write leaves a *damaged tail*: a short record, or (after a power
  loss) garbage or zeros where the last record should be. Reading stops cleanly before it and
  reports it; opening the log for appending first copies the whole file to a fsynced ``.bak``
  file and then cuts the tail, so no byte that was ever written is lost.
* A failed append (disk full, I/O error) cuts the file back to where the record started before
  raising, so later records never follow a half-written one.
* A damaged record in the middle (bad magic, CRC mismatch, with an intact record after it) is
  never silently skipped: reading raises :class:`RecordLogCorruptError` naming the file, record
  number and byte offset.
* One writer at a time (an exclusive ``flock``); any number of readers.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"ERLR"
_HEADER = struct.Struct("<4sII")
_U32 = struct.Struct("<I")
MAX_RECORD_BYTES = 1 << 30


class RecordLogError(RuntimeError):
    """Base class for record-log problems."""


class RecordLogCorruptError(RecordLogError):
    """A record in the middle of a log is damaged (not a crash-truncated tail)."""


class RecordLogLockedError(RecordLogError):
    """Another process holds the log open for writing."""


@dataclass(frozen=True)
class Record:
    """One stored record: its position, metadata and arrays."""

    index: int
    offset: int
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]


def encode_record(meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
                  *, compress: bool = True) -> bytes:
    """Serialise one record (framing included)."""
    arrays = arrays or {}
    specs = []
    blobs = []
    for name, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        if a.dtype == object:
            raise TypeError(f"array {name!r} has dtype object; only numeric arrays can be stored")
        specs.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape)})
        blobs.append(a.tobytes())
    body = b"".join(blobs)
    if compress and body:
        body = zlib.compress(body, 1)
    header = dict(meta)
    if "_arrays" in header or "_z" in header:
        raise ValueError("meta keys '_arrays' and '_z' are reserved")
    header["_arrays"] = specs
    header["_z"] = bool(compress and blobs)
    meta_bytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    payload = _U32.pack(len(meta_bytes)) + meta_bytes + body
    if len(payload) > MAX_RECORD_BYTES:
        raise ValueError(f"record of {len(payload)} bytes exceeds the {MAX_RECORD_BYTES} limit")
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    (meta_len,) = _U32.unpack_from(payload, 0)
    meta = json.loads(payload[4 : 4 + meta_len].decode())
    body = payload[4 + meta_len :]
    if meta.pop("_z", False):
        body = zlib.decompress(body)
    arrays: dict[str, np.ndarray] = {}
    pos = 0
    for spec in meta.pop("_arrays", []):
        dtype = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        arrays[spec["name"]] = np.frombuffer(body, dtype=dtype, count=int(np.prod(shape)),
                                             offset=pos).reshape(shape).copy()
        pos += nbytes
    if pos != len(body):
        raise ValueError(f"array bytes mismatch ({pos} described, {len(body)} stored)")
    return meta, arrays


@dataclass(frozen=True)
class ScanResult:
    """What a full read of a log found."""

    records: list[Record]
    valid_bytes: int
    truncated_tail_bytes: int


def _intact_record_after(data: bytes, pos: int) -> int | None:
    """Offset of the first intact record (magic, length and checksum) after ``pos``, if any."""
    start = pos + 1
    while (found := data.find(MAGIC, start)) >= 0:
        if len(data) - found >= _HEADER.size:
            _, length, crc = _HEADER.unpack_from(data, found)
            end = found + _HEADER.size + length
            if end <= len(data) and zlib.crc32(data[found + _HEADER.size : end]) == crc:
                return found
        start = found + 1
    return None


def scan(path: str | Path) -> ScanResult:
    """Read every complete record of ``path`` (a damaged tail is reported, not read).

    Raises:
        RecordLogCorruptError: a record is damaged and an intact record follows it.
    """
    path = Path(path)
    records: list[Record] = []
    data = path.read_bytes() if path.exists() else b""
    pos = 0
    while pos < len(data):
        if len(data) - pos < _HEADER.size:
            break  # truncated header at the tail
        magic, length, crc = _HEADER.unpack_from(data, pos)
        if magic != MAGIC:
            if records and _intact_record_after(data, pos) is None:
                break  # garbage after the last intact record: a damaged tail
            raise RecordLogCorruptError(
                f"{path}: record {len(records)} at byte {pos}: bad magic {magic!r} "
                "(not an erl_vlm record log, or damaged)"
            )
        end = pos + _HEADER.size + length
        if end > len(data):
            if _intact_record_after(data, pos) is None:
                break  # truncated payload at the tail
            raise RecordLogCorruptError(
                f"{path}: record {len(records)} at byte {pos}: length runs past an intact record"
            )
        payload = data[pos + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            if _intact_record_after(data, pos) is None:
                break  # the last record was not completely written
            raise RecordLogCorruptError(
                f"{path}: record {len(records)} at byte {pos}: checksum mismatch"
            )
        try:
            meta, arrays = _decode_payload(payload)
        except (ValueError, zlib.error, UnicodeDecodeError, struct.error) as exc:
            raise RecordLogCorruptError(
                f"{path}: record {len(records)} at byte {pos}: undecodable ({exc})"
            ) from exc
        records.append(Record(len(records), pos, meta, arrays))
        pos = end
    return ScanResult(records, pos, len(data) - pos)


def _fsync_dir(path: Path) -> None:
    """Make a file's creation or rename in ``path`` durable (best effort where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RecordLog:
    """An append-only record file opened for writing (one writer; see module docstring)."""

    def __init__(self, path: str | Path, *, fsync: bool = True, compress: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.compress = compress
        created = not self.path.exists()
        self._fh = open(self.path, "a+b")  # noqa: SIM115 - held open for the log's lifetime
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._fh.close()
            raise RecordLogLockedError(f"{self.path} is open for writing by another process") from exc
        if created:
            _fsync_dir(self.path.parent)
        try:
            result = scan(self.path)
        except RecordLogError:
            self.close()
            raise
        self.recovered_tail_bytes = result.truncated_tail_bytes
        self.backup_path: Path | None = None
        if result.truncated_tail_bytes:
            self.backup_path = self.path.with_name(
                f"{self.path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            )
            shutil.copy2(self.path, self.backup_path)
            with open(self.backup_path, "rb") as bak:
                os.fsync(bak.fileno())
            _fsync_dir(self.path.parent)
            self._fh.truncate(result.valid_bytes)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        self._records = result.records
        self._failed: str | None = None
        self._fh.seek(0, os.SEEK_END)

    @property
    def records(self) -> list[Record]:
        """Records present when the log was opened (with their arrays until
        :meth:`forget_arrays`) plus those appended since (metadata only: their arrays are on disk,
        not kept in memory)."""
        return self._records

    def forget_arrays(self) -> None:
        """Drop the arrays of the records read at open (once the caller has ingested them)."""
        self._records = [Record(r.index, r.offset, r.meta, {}) for r in self._records]

    def __len__(self) -> int:
        return len(self._records)

    def append(self, meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Record:
        """Durably append one record and return it."""
        if self._fh.closed:
            raise RecordLogError(f"{self.path} is closed")
        if self._failed:
            raise RecordLogError(f"{self.path}: an earlier append failed and could not be undone "
                                 f"({self._failed}); reopen the log")
        blob = encode_record(meta, arrays, compress=self.compress)
        offset = self._fh.seek(0, os.SEEK_END)
        try:
            self._fh.write(blob)
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
        except OSError as exc:
            try:  # cut the half-written record so the next one does not follow garbage
                self._fh.truncate(offset)
                self._fh.seek(offset)
                os.fsync(self._fh.fileno())
            except OSError as undo:
                self._failed = f"{type(undo).__name__}: {undo}"
            raise RecordLogError(f"{self.path}: append failed: {exc}") from exc
        rec = Record(len(self._records), offset, dict(meta), {})
        self._records.append(rec)
        return rec

    def iter_meta(self) -> Iterator[dict[str, Any]]:
        """Metadata of every record, oldest first."""
        for r in self._records:
            yield r.meta

    def close(self) -> None:
        """Release the writer lock and close the file."""
        if not self._fh.closed:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
