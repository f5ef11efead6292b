"""Worker reports (JSON text sequences) and TensorBoard event records written without TF."""

from __future__ import annotations

import struct
from pathlib import Path

from unem.jobs import protocol
from unem.jobs.scalars import ScalarWriter, masked_crc32c, record


def test_reports_are_found_in_any_line_and_everything_else_is_log_text() -> None:
    line = protocol.encode({"report": "progress", "step": 3, "total": 9, "metrics": {"x": 1}})
    assert line.startswith(b"\x1e") and line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode(line.decode()) == ("", {"report": "progress", "step": 3, "total": 9,
                                                  "metrics": {"x": 1}})  # fmt: skip
    # a print(..., end="") of the job right before a report
    assert protocol.decode("50%" + line.decode())[0] == "50%"
    assert protocol.decode("plain text\n") == ("plain text", None)
    assert protocol.decode("\x1e{not json") == ("{not json", None)
    assert protocol.decode('\x1e{"report": "nonsense"}') == ('{"report": "nonsense"}', None)


def test_metrics_keep_finite_numbers_only() -> None:
    metrics = {"loss": 0.5, "n": 3, "nan": float("nan"), "flag": True, "text": "x"}
    assert protocol.clean_metrics(metrics) == {"loss": 0.5, "n": 3.0}
    assert protocol.clean_metrics([1, 2]) == {}
    assert (protocol.integer("7"), protocol.integer(None), protocol.integer(-3)) == (7, 0, 0)


def test_records_use_tensorboards_masked_crc32c() -> None:
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference

    for data in (b"", b"a", b"123456789", bytes(range(256)) * 3):
        assert masked_crc32c(data) == reference(data)
    framed = record(b"payload")
    assert struct.unpack("<Q", framed[:8]) == (7,) and framed[12:19] == b"payload"


def read_records(path: Path) -> list[bytes]:
    """TFRecords, each checked with TensorBoard's own CRC (the TensorBoard proxy test then
    has a real TensorBoard read these files)."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference

    data, records = path.read_bytes(), []
    while data:
        (length,) = struct.unpack("<Q", data[:8])
        assert struct.unpack("<I", data[8:12])[0] == reference(data[:8])
        payload = data[12 : 12 + length]
        assert struct.unpack("<I", data[12 + length : 16 + length])[0] == reference(payload)
        records.append(payload)
        data = data[16 + length :]
    return records


def test_scalar_writer_writes_tensorboard_event_files(tmp_path: Path) -> None:
    from tensorboard.compat.proto import event_pb2

    writer = ScalarWriter(tmp_path / "run")
    writer.add(1, {"loss": 0.5, "accuracy": 0.25})
    writer.add(2, {"loss": 0.25})
    writer.close()
    [path] = (tmp_path / "run").iterdir()
    assert path.name.startswith("events.out.tfevents.")
    events = [event_pb2.Event.FromString(raw) for raw in read_records(path)]
    assert events[0].file_version == "brain.Event:2"
    values = [(e.step, v.tag, v.simple_value) for e in events[1:] for v in e.summary.value]
    assert values == [(1, "loss", 0.5), (1, "accuracy", 0.25), (2, "loss", 0.25)]
