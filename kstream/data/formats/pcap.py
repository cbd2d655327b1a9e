"""Capture files (pcap, pcapng, gzip of either) re-timed so NFStream's millisecond clock counts microseconds.

NFStream keeps packet times as whole milliseconds, while CICFlowMeter's durations and
inter-arrival times are microseconds. :func:`retime` copies a capture to a classic pcap in
which every packet's offset from the first packet, in microseconds, is written where a reader
expects milliseconds: NFStream then measures microseconds exactly, and its timeouts (given in
seconds) must be multiplied by :data:`TIME_SCALE`. Packet bytes, captured and original lengths
and the link type are copied unchanged; nanosecond timestamps are cut to microseconds, as
libpcap does when it opens such a file.

Only the 16-byte record headers of a classic pcap are read here (with :mod:`struct`, so times
stay integers and a record cut short is noticed); pcapng blocks are read by dpkt. A file that is
neither, or that ends inside a record, raises :class:`~kstream.errors.DataError`.

>>> import io, struct
>>> src = io.BytesIO(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
...                  + struct.pack("<IIII", 100, 250, 1, 1) + b"x"
...                  + struct.pack("<IIII", 101, 500, 1, 1) + b"y")
>>> out = io.BytesIO()
>>> retime(src, out, "two.pcap")
Retimed(packets=2, start_us=100000250, linktype=1)
>>> [struct.unpack("<II", out.getvalue()[o:o + 8]) for o in (24, 41)]  # 1000250 us later = "1000.250 s"
[(0, 0), (1000, 250000)]
"""

from __future__ import annotations

import gzip
import logging
import struct
from pathlib import Path
from typing import BinaryIO, NamedTuple

import dpkt

from kstream.errors import DataError

__all__ = ["is_capture", "SUFFIXES", "TIME_SCALE", "Retimed", "retime", "retime_file"]

log = logging.getLogger(__name__)

#: Reader time units per real second after :func:`retime` (a microsecond reads as a millisecond).
TIME_SCALE = 1000
#: File names read as captures (each also gzip-compressed, with ``.gz`` after it).
SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp")

_MICRO, _NANO = 0xA1B2C3D4, 0xA1B23C4D
_PCAPNG = 0x0A0D0D0A
_MAX_RECORD = 1 << 18  # libpcap's largest snapshot length: a longer record is corruption
_MAX_SECONDS = (1 << 32) - 1  # the pcap header's seconds field


class Retimed(NamedTuple):
    """What :func:`retime` copied: packet count, first packet's time (µs since the epoch), link type."""

    packets: int
    start_us: int
    linktype: int


def _header(linktype: int, snaplen: int) -> bytes:
    return struct.pack("<IHHiIII", _MICRO, 2, 4, 0, 0, snaplen or _MAX_RECORD, linktype)


class _Writer:
    """Writes records whose times are microsecond offsets from the first packet, spelled as milliseconds."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.start: int | None = None
        self.packets = 0
        self.early = 0

    def write(self, micros: int, data: bytes, wire_len: int) -> None:
        if self.start is None:
            self.start = micros
        offset = micros - self.start
        if offset < 0:  # out of order before the first packet; NFStream would move it forward anyway
            self.early += 1
            offset = 0
        seconds, rest = divmod(offset, 1000)
        if seconds > _MAX_SECONDS:
            raise DataError("the capture spans more than 49 days; split it (editcap -i) and read the parts")
        self.out.write(struct.pack("<IIII", seconds, rest * 1000, len(data), wire_len))
        self.out.write(data)
        self.packets += 1


def _read_exact(stream: BinaryIO, size: int, name: str, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise DataError(
            f"{name} is cut short inside {what} (got {len(data)} of {size} bytes); "
            "repair it (e.g. pcapfix) or trim the last packet (editcap -r)"
        )
    return data


def _copy_pcap(stream: BinaryIO, head: bytes, out: BinaryIO, name: str) -> Retimed:
    head += _read_exact(stream, 24 - len(head), name, "the file header")
    endian = "<" if struct.unpack("<I", head[:4])[0] in (_MICRO, _NANO) else ">"
    magic, _major, _minor, _zone, _sigfigs, snaplen, linktype = struct.unpack(endian + "IHHiIII", head)
    divisor = 1000 if magic == _NANO else 1  # fraction units per microsecond
    record = struct.Struct(endian + "IIII")
    out.write(_header(linktype, snaplen))
    writer = _Writer(out)
    while True:
        raw = stream.read(16)
        if not raw:
            break
        if len(raw) < 16:
            _read_exact(stream, 16, name, f"the header of packet {writer.packets + 1}")  # raises
        seconds, fraction, captured, wire_len = record.unpack(raw)
        if captured > max(snaplen, _MAX_RECORD):
            raise DataError(
                f"{name}: packet {writer.packets + 1} claims {captured} bytes; the file is corrupt "
                "(repair it with pcapfix)"
            )
        data = _read_exact(stream, captured, name, f"packet {writer.packets + 1}")
        writer.write(seconds * 1_000_000 + fraction // divisor, data, wire_len)
    return _finish(writer, linktype, name)


def _copy_pcapng(stream: BinaryIO, head: bytes, out: BinaryIO, name: str) -> Retimed:
    class _Rejoined:  # dpkt reads from the start: hand it back the 4 bytes already consumed
        pending = head

        def read(self, size: int = -1) -> bytes:
            if not self.pending:
                return stream.read(size)
            if size < 0:
                data, self.pending = self.pending + stream.read(), b""
                return data
            data, self.pending = self.pending[:size], self.pending[size:]
            return data + stream.read(size - len(data)) if len(data) < size else data

    try:
        reader = dpkt.pcapng.Reader(_Rejoined())
        linktype = reader.datalink()
        out.write(_header(linktype, reader.snaplen))
        writer = _Writer(out)
        for timestamp, data in reader:
            writer.write(round(timestamp * 1_000_000), bytes(data), len(data))
    except (dpkt.UnpackError, ValueError, struct.error) as err:
        raise DataError(f"cannot read {name} as pcapng ({err}); repair it or convert it: editcap -F pcap") from err
    return _finish(writer, linktype, name)


def _finish(writer: _Writer, linktype: int, name: str) -> Retimed:
    if writer.early:
        log.warning("%s: %d packets are older than the first one; timed as the first", name, writer.early)
    return Retimed(writer.packets, writer.start or 0, linktype)


def retime(stream: BinaryIO, out: BinaryIO, name: str = "capture") -> Retimed:
    """Copy the capture read from ``stream`` to ``out`` as a classic pcap on the µs-as-ms clock.

    ``name`` only labels errors. Raises DataError if ``stream`` is not a pcap/pcapng or is cut short.
    """
    head = stream.read(4)
    if len(head) < 4:
        raise DataError(f"{name} is empty or cut short before its file header; is it a capture file?")
    magic = struct.unpack("<I", head)[0]
    if magic in (_MICRO, _NANO) or struct.unpack(">I", head)[0] in (_MICRO, _NANO):
        return _copy_pcap(stream, head, out, name)
    if magic == _PCAPNG:
        return _copy_pcapng(stream, head, out, name)
    raise DataError(f"{name} is not a pcap or pcapng capture (it starts with {head.hex()}); pass a .pcap/.pcapng file")


def retime_file(path: Path, out: BinaryIO) -> Retimed:
    """:func:`retime` for a file on disk; ``.gz`` files are decompressed on the fly."""
    try:
        with open(path, "rb") as raw:
            if path.name.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                    return retime(unzipped, out, str(path))  # type: ignore[arg-type]
            return retime(raw, out, str(path))
    except (OSError, EOFError) as err:  # missing file, bad gzip stream, full disk
        raise DataError(f"cannot read {path}: {err}") from err


def is_capture(path: str | Path) -> bool:
    """Whether ``path`` names a packet capture file (.pcap, .pcapng, .cap, .dmp, gzipped or not).

    >>> is_capture("day1.pcap.gz"), is_capture("flows.csv")
    (True, False)
    """
    return Path(path).name.lower().removesuffix(".gz").endswith(SUFFIXES)
