"""Reads an offline W&B run file (``run-<id>.wandb``) back into its protobuf Records.

The file is a ``:W&B`` header (ident, magic 0xBEE1, version) followed by LevelDB-log
framing: 32 KiB blocks of chunks, each a 7-byte header (crc32, little-endian length,
type: 1 full, 2 first, 3 middle, 4 last) and its payload; a block tail shorter than a
header is zero padding. Payloads are serialized ``wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from wandb.proto import wandb_internal_pb2

_BLOCK = 32 * 1024
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def payloads(path: Path) -> list[bytes]:
    """The record payloads of a ``.wandb`` file, checksums verified."""
    raw = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", raw[:_HEADER])
    assert ident == b":W&B" and magic == 0xBEE1 and version == 0, (ident, magic, version)
    out, pending, offset = [], b"", _HEADER
    while offset + _HEADER <= len(raw):
        room = _BLOCK - offset % _BLOCK
        if room < _HEADER:
            offset += room
            continue
        checksum, length, kind = struct.unpack("<IHB", raw[offset : offset + _HEADER])
        data = raw[offset + _HEADER : offset + _HEADER + length]
        if kind == 0 and length == 0:  # zero padding at the end of the file
            break
        assert zlib.crc32(bytes([kind]) + data) & 0xFFFFFFFF == checksum, "bad checksum"
        offset += _HEADER + length
        if kind == _FULL:
            out.append(data)
        elif kind == _FIRST:
            pending = data
        elif kind == _MIDDLE:
            pending += data
        elif kind == _LAST:
            out.append(pending + data)
    return out


def records(path: Path) -> list[wandb_internal_pb2.Record]:
    """Every Record in the file, in order."""
    parsed = []
    for data in payloads(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        parsed.append(record)
    return parsed


def _items(items) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def read_run(run_dir: Path) -> dict:
    """The run's id, config, history rows, final summary and exit code from its offline
    files."""
    (path,) = Path(run_dir).glob("run-*.wandb")
    run, config, history, summary, exit_code = None, {}, [], {}, None
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config.update(_items(record.run.config.update))
        elif kind == "config":
            config.update(_items(record.config.update))
        elif kind == "history":
            history.append(_items(record.history.item))
        elif kind == "summary":
            summary.update(_items(record.summary.update))
        elif kind == "exit":
            exit_code = record.exit.exit_code
    return {
        "run": run, "config": config, "history": history, "summary": summary,
        "exit_code": exit_code,
    }  # fmt: skip
