"""TensorBoard event files without TensorFlow: scalars a job reports become curves.

The records are TFRecord framed (length, masked CRC-32C, data, masked CRC-32C), the
payloads `Event` protocol buffers from the `tensorboard` package. TensorBoard's own
writer reaches for `tensorflow` to open files, which costs a worker seconds; this does not.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

CRC32C_POLY = 0x82F63B78
_TABLE: list[int] = []


def _crc_table() -> list[int]:
    if not _TABLE:
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ CRC32C_POLY if crc & 1 else crc >> 1
            _TABLE.append(crc)
    return _TABLE


def crc32c(data: bytes) -> int:
    table, crc = _crc_table(), 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """One TFRecord: what TensorBoard reads from an event file."""
    header = struct.pack("<Q", len(data))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


class ScalarWriter:
    """Append scalars to a new event file in `folder` (a TensorBoard run)."""

    def __init__(self, folder: Path) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        name = f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{id(self)}.unem"
        self.file: BinaryIO = (folder / name).open("ab")
        self._write(self._event(wall_time=now, file_version="brain.Event:2"))

    def _write(self, event: Any) -> None:
        self.file.write(record(event.SerializeToString()))
        self.file.flush()  # TensorBoard reads the file while the job runs

    def add(self, step: int, values: Mapping[str, float]) -> None:
        summary = self._summary(
            value=[self._summary.Value(tag=tag, simple_value=v) for tag, v in values.items()]
        )
        self._write(self._event(wall_time=time.time(), step=step, summary=summary))

    def close(self) -> None:
        self.file.close()
