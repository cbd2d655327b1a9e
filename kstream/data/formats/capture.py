"""Network flows from packets, with the CICFlowMeter features that packets can give faithfully.

A pcap file (:func:`flows_from_pcap`) or a live interface (:func:`flows_from_interface`) is
metered into bidirectional flows by NFStream (its C engine over libpcap) and each flow becomes
one row of the canonical CICIDS2017 features of :mod:`kstream.data.formats`, under the same names,
so a model trained on the dataset scores captured traffic. Only :data:`CAPTURE_FEATURES` are
computed; :data:`FEATURE_DEFINITIONS` says for each how NFStream's measure maps to
CICFlowMeter's, and :data:`LEFT_OUT` why the other canonical features are not computed (a
wire message carries them as null, as for any missing value).

How flows are cut, compared with CICFlowMeter (the extractor of CICIDS2017):

- The first packet's sender is the *forward* side, as in CICFlowMeter.
- A flow ends ``flow_timeout`` (120 s, CICFlowMeter's default) after its first packet, the next
  packet starting a new flow; NFStream's idle timeout is set to the same value, which cuts the
  same flows. CICFlowMeter also ends TCP flows at connection teardown (FIN; the 2017 and the
  improved releases differ in the details) and NFStream does not: a TCP connection is one flow,
  and a 5-tuple reused within the timeout joins the earlier flow.
- Flows of one packet are dropped, as CICFlowMeter never writes them (``min_packets=1`` keeps
  them). Tunnels are not decoded (CICFlowMeter does not either).
- Lengths are transport payload bytes (NFStream's ``accounting_mode=3``), as in CICFlowMeter.
- Times are microseconds. NFStream counts whole milliseconds, so a pcap is first re-timed by
  :mod:`kstream.data.formats.pcap` so that its clock counts microseconds: durations and inter-arrival
  times from a file are exact. A live capture cannot be re-timed: its times are whole
  milliseconds times 1000 (a warning says so).

Record ids are ``<file stem>-<n>``, ``n`` counting flows in order of first packet (then
addresses and ports), so the same file always gives the same ids; live ids are
``<interface>-<capture start, ms since the epoch>-<n>``.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kstream.data.formats.cicflowmeter import CICIDS_FEATURES
from kstream.data.formats.pcap import SUFFIXES, TIME_SCALE, retime_file
from kstream.errors import ConfigError, DataError

__all__ = [
    "CAPTURE_FEATURES",
    "FEATURE_DEFINITIONS",
    "FLOW_TIMEOUT_S",
    "LEFT_OUT",
    "flow_frame",
    "flows_from_interface",
    "flows_from_pcap",
]

log = logging.getLogger(__name__)

#: CICFlowMeter's flow timeout: a flow ends this many seconds after its first packet.
FLOW_TIMEOUT_S = 120

_T = " Times are µs, exact from a file (see the module notes); live, whole ms x 1000."
_STD = " Std is the sample standard deviation (n-1), as the Apache Commons Math statistics of CICFlowMeter."
_PAYLOAD = (
    " NFStream with accounting_mode=3 counts transport payload bytes: IP total length minus the IP and TCP/UDP "
    "headers (ICMP: minus its 8-byte header), so Ethernet padding is left out. CICFlowMeter: TCP/UDP payload bytes, "
    "padding left out in the improved release (the 2017 release counted it: its 6-byte minimums)."
)
_STATS = (("Max", "max"), ("Min", "min"), ("Mean", "mean"), ("Std", "stddev"))


def _dir(side: str) -> tuple[str, str]:
    """NFStream's prefix and our word for a CICFlowMeter side: Fwd is the first packet's sender."""
    return ("src2dst", "initiator") if side == "Fwd" else ("dst2src", "responder")


def _definitions() -> dict[str, str]:
    d = {
        "Dst Port": "dst_port: destination port of the first packet (0 for ICMP). CICFlowMeter: the same.",
        "Protocol": "protocol: IP protocol number (6 TCP, 17 UDP, 1 ICMP). CICFlowMeter: the same.",
        "Flow Duration": "bidirectional_duration_ms: last minus first packet time. CICFlowMeter: the same." + _T,
        "Total Fwd Packet": "src2dst_packets: packets sent by the initiator, the first packet's sender "
        "(CICFlowMeter's forward side). CICFlowMeter: the same.",
        "Total Bwd packets": "dst2src_packets: packets sent by the responder. CICFlowMeter: the same.",
        "Flow Bytes/s": "(src2dst_bytes + dst2src_bytes) / (Flow Duration in s): payload bytes per second. "
        "CICFlowMeter: the same, a double division: inf when the duration is 0 (NaN if no byte either).",
        "Flow Packets/s": "bidirectional_packets / (Flow Duration in s); inf when the duration is 0, as CICFlowMeter.",
        "Packet Length Variance": "bidirectional_stddev_ps squared: the sample variance of the payload sizes. "
        "CICFlowMeter: the same." + _PAYLOAD,
        "Down/Up Ratio": "dst2src_packets / src2dst_packets, a real number as in the improved release "
        "(the 2017 release truncated it to an integer).",
        "Average Packet Size": "(src2dst_bytes + dst2src_bytes) / bidirectional_packets, equal to Packet Length "
        "Mean. CICFlowMeter (improved release): the same (the 2017 release counted the first packet twice).",
    }
    for side in ("Fwd", "Bwd"):
        nf, who = _dir(side)
        d[f"Total Length of {side} Packet"] = (
            f"{nf}_bytes: sum of the payload bytes sent by the {who}. CICFlowMeter: the same." + _PAYLOAD
        )
        for stat, key in _STATS:
            d[f"{side} Packet Length {stat}"] = (
                f"{nf}_{key}_ps: {stat.lower()} of the payload sizes of the packets sent by the {who}; 0 when it "
                "sent none, as CICFlowMeter." + (_STD if stat == "Std" else "") + _PAYLOAD
            )
        d[f"{side} IAT Total"] = (
            f"{nf}_duration_ms: last minus first packet time of the {who}, the sum of its gaps; 0 with one packet. "
            "CICFlowMeter: the same." + _T
        )
        for stat, key in _STATS:
            d[f"{side} IAT {stat}"] = (
                f"{nf}_{key}_piat_ms: {stat.lower()} of the gaps between consecutive packets of the {who}; 0 with "
                "fewer than two, as CICFlowMeter." + (_STD if stat == "Std" else "") + _T
            )
        for flag in ("PSH", "URG"):
            d[f"{side} {flag} Flags"] = (
                f"{nf}_{flag.lower()}_packets: packets of the {who} with {flag} set. CICFlowMeter (improved release): "
                "the same (the 2017 release counted it in the first packet only: 0 or 1)."
            )
        d[f"{side} RST Flags"] = (
            f"{nf}_rst_packets: packets of the {who} with RST set. CICFlowMeter (improved release, which added "
            "the feature): the same."
        )
        d[f"{side} Packets/s"] = f"{nf}_packets / (Flow Duration in s); 0 when the duration is 0, as CICFlowMeter."
        d[f"{side} Segment Size Avg"] = (
            f"{nf}_bytes / {nf}_packets, equal to {side} Packet Length Mean (0 with no packet). CICFlowMeter: the same."
        )
    for stat, key in _STATS:
        d[f"Packet Length {stat}"] = (
            f"bidirectional_{key}_ps: {stat.lower()} of the payload sizes of all packets. CICFlowMeter (improved "
            "release): the same (the 2017 release counted the first packet twice)."
            + (_STD if stat == "Std" else "")
            + _PAYLOAD
        )
        d[f"Flow IAT {stat}"] = (
            f"bidirectional_{key}_piat_ms: {stat.lower()} of the gaps between consecutive packets, either "
            "direction. CICFlowMeter: the same." + (_STD if stat == "Std" else "") + _T
        )
    for flag in ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "CWR", "ECE"):
        d[f"{flag} Flag Count"] = (
            f"bidirectional_{flag.lower()}_packets: packets of either side with {flag} set. CICFlowMeter (improved "
            "release): the same (the 2017 release gave 0 or 1)."
        )
    return d


_ALL_DEFINITIONS = _definitions()
#: The canonical features computed from packets, in the canonical order of CICIDS_FEATURES.
CAPTURE_FEATURES: tuple[str, ...] = tuple(name for name in CICIDS_FEATURES if name in _ALL_DEFINITIONS)
#: Canonical feature -> how NFStream's measure maps to CICFlowMeter's (units, conversions, differences).
FEATURE_DEFINITIONS: dict[str, str] = {name: _ALL_DEFINITIONS[name] for name in CAPTURE_FEATURES}

_BULK = tuple(
    f"{side} {what}" for side in ("Fwd", "Bwd") for what in ("Bytes/Bulk Avg", "Packet/Bulk Avg", "Bulk Rate Avg")
)
_NO_STATE = "NFStream keeps no such per-packet state, and its per-packet plugins would run in Python for every packet"
#: Canonical features not computed, with the reason.
LEFT_OUT: dict[str, str] = {
    "Fwd Header Length": "sum of TCP/UDP header bytes: NFStream gives it only from a second pass in another "
    "accounting mode (transport minus payload bytes), impossible on a live interface",
    "Bwd Header Length": "as Fwd Header Length",
    "Fwd Seg Size Min": "smallest forward TCP/UDP header: not measured by NFStream",
    "FWD Init Win Bytes": "TCP window of the first forward packet: not read by NFStream",
    "Bwd Init Win Bytes": "TCP window of the first backward packet: not read by NFStream",
    "Fwd Act Data Pkts": "forward packets with at least one payload byte: not counted by NFStream",
    **{f"Active {s}": f"activity periods split at 5 s gaps: {_NO_STATE}" for s in ("Mean", "Std", "Max", "Min")},
    **{f"Idle {s}": f"idle periods over 5 s: {_NO_STATE}" for s in ("Mean", "Std", "Max", "Min")},
    **{
        name: f"CICFlowMeter's subflow split at 1 s gaps: {_NO_STATE}"
        for name in ("Subflow Fwd Packets", "Subflow Fwd Bytes", "Subflow Bwd Packets", "Subflow Bwd Bytes")
    },
    **{name: f"CICFlowMeter's bulk-transfer state machine: {_NO_STATE}" for name in _BULK},
    "ICMP Code": "not exposed by NFStream",
    "ICMP Type": "not exposed by NFStream",
    "Total TCP Flow Time": "added by the improved release's modified CICFlowMeter; its definition is not "
    "documented where we could check it (in the bundled sample it equals Flow Duration for 92% of TCP flows)",
}

# NFStream attributes read from every flow: the flow's key (for ordering), then its measures.
_KEYS = ("src_ip", "src_port", "dst_ip", "bidirectional_first_seen_ms")
_SIDES = ("bidirectional", "src2dst", "dst2src")
_ATTRS = (
    [*_KEYS, "dst_port", "protocol"]
    + [f"{s}_{m}" for s in _SIDES for m in ("packets", "bytes", "duration_ms")]
    + [f"{s}_{k}_ps" for s in _SIDES for k in ("min", "max", "mean", "stddev")]
    + [f"{s}_{k}_piat_ms" for s in _SIDES for k in ("min", "max", "mean", "stddev")]
    + [f"{s}_{f}_packets" for s in _SIDES for f in ("fin", "syn", "rst", "psh", "ack", "urg", "cwr", "ece")]
)


def flow_frame(raw: dict[str, list[Any]], micros_per_tick: float) -> pd.DataFrame:
    """The :data:`CAPTURE_FEATURES` frame (float64) from NFStream attribute columns.

    ``raw`` maps NFStream flow attributes to one value per flow; ``micros_per_tick`` is the
    length of NFStream's time unit in µs (1 for a re-timed pcap, 1000 live).

    >>> raw = {a: [0] for a in _ATTRS}
    >>> raw.update(bidirectional_packets=[2], src2dst_packets=[2], bidirectional_bytes=[10], src2dst_bytes=[10],
    ...            bidirectional_duration_ms=[4], src2dst_duration_ms=[4])
    >>> row = flow_frame(raw, 1.0).iloc[0]
    >>> row[["Flow Duration", "Flow Bytes/s", "Down/Up Ratio", "Bwd Packets/s"]].tolist()
    [4.0, 2500000.0, 0.0, 0.0]
    """
    col = {name: np.asarray(values, dtype=np.float64) for name, values in raw.items() if name not in _KEYS}
    out: dict[str, np.ndarray] = {
        "Dst Port": col["dst_port"],
        "Protocol": col["protocol"],
        "Flow Duration": col["bidirectional_duration_ms"] * micros_per_tick,
        "Total Fwd Packet": col["src2dst_packets"],
        "Total Bwd packets": col["dst2src_packets"],
        "Total Length of Fwd Packet": col["src2dst_bytes"],
        "Total Length of Bwd Packet": col["dst2src_bytes"],
    }
    seconds = out["Flow Duration"] / 1e6
    packets, payload = col["bidirectional_packets"], col["bidirectional_bytes"]
    with np.errstate(divide="ignore", invalid="ignore"):
        for side in ("Fwd", "Bwd"):
            nf, _ = _dir(side)
            count = col[f"{nf}_packets"]
            for stat, key in _STATS:
                out[f"{side} Packet Length {stat}"] = np.where(count > 0, col[f"{nf}_{key}_ps"], 0.0)
            several = count > 1
            out[f"{side} IAT Total"] = np.where(several, col[f"{nf}_duration_ms"] * micros_per_tick, 0.0)
            for stat, key in _STATS:
                out[f"{side} IAT {stat}"] = np.where(several, col[f"{nf}_{key}_piat_ms"] * micros_per_tick, 0.0)
            for flag in ("PSH", "URG", "RST"):
                out[f"{side} {flag} Flags"] = col[f"{nf}_{flag.lower()}_packets"]
            out[f"{side} Packets/s"] = np.where(seconds > 0, count / seconds, 0.0)
            out[f"{side} Segment Size Avg"] = np.where(count > 0, col[f"{nf}_bytes"] / count, 0.0)
        out["Flow Bytes/s"] = payload / seconds  # inf (or NaN for 0/0) at zero duration, as CICFlowMeter
        out["Flow Packets/s"] = packets / seconds
        for stat, key in _STATS:
            out[f"Flow IAT {stat}"] = col[f"bidirectional_{key}_piat_ms"] * micros_per_tick
            out[f"Packet Length {stat}"] = col[f"bidirectional_{key}_ps"]
        out["Packet Length Variance"] = col["bidirectional_stddev_ps"] ** 2
        for flag in ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "CWR", "ECE"):
            out[f"{flag} Flag Count"] = col[f"bidirectional_{flag.lower()}_packets"]
        out["Down/Up Ratio"] = np.where(col["src2dst_packets"] > 0, col["dst2src_packets"] / col["src2dst_packets"], 0)
        out["Average Packet Size"] = np.where(packets > 0, payload / packets, 0.0)
    return pd.DataFrame({name: out[name] for name in CAPTURE_FEATURES}, columns=list(CAPTURE_FEATURES))


def _streamer(source: str, idle: int, active: int, **options: Any) -> Any:
    from nfstream import NFStreamer  # imported here: it loads a native engine

    return NFStreamer(
        source=source,
        decode_tunnels=False,  # CICFlowMeter meters the outer packets
        idle_timeout=idle,
        active_timeout=active,
        accounting_mode=3,  # payload bytes, CICFlowMeter's lengths
        n_dissections=0,  # no application detection: not a CICFlowMeter feature, and costly
        statistical_analysis=True,
        **options,
    )


class _Meter:
    """Iterates an NFStreamer; undoes its CPU pinning of this process; stops its meter processes on close."""

    def __init__(self, streamer: Any) -> None:
        self._affinity = os.sched_getaffinity(0)
        self._flows = iter(streamer)

    def next(self) -> Any:
        """The next flow, or None at the end. NFStream pins its caller to its first two CPUs: undone here."""
        try:
            return next(self._flows, None)
        finally:
            os.sched_setaffinity(0, self._affinity)

    def close(self) -> None:
        """NFStream's iterator stops its meters on KeyboardInterrupt, then ends; a finished one just re-raises."""
        try:
            self._flows.throw(KeyboardInterrupt)
        except (StopIteration, KeyboardInterrupt):
            pass
        finally:
            os.sched_setaffinity(0, self._affinity)


def _append(flow: Any, into: dict[str, list[Any]]) -> None:
    for name in _ATTRS:
        into[name].append(getattr(flow, name))


def _check(min_packets: int, flow_timeout: int, idle_timeout: int | None) -> int:
    if min_packets < 1:
        raise ConfigError(f"min_packets must be at least 1, not {min_packets}")
    idle = flow_timeout if idle_timeout is None else idle_timeout
    if flow_timeout < 1 or idle < 1:
        raise ConfigError(f"flow and idle timeouts must be whole seconds >= 1, not {flow_timeout} and {idle}")
    return idle


def _stem(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[0] if "." in name else name


def flows_from_pcap(
    path: str | Path,
    *,
    flow_timeout: int = FLOW_TIMEOUT_S,
    idle_timeout: int | None = None,
    min_packets: int = 2,
    bpf_filter: str | None = None,
) -> tuple[pd.Series, pd.DataFrame]:
    """The flows of a capture file: record ids and their :data:`CAPTURE_FEATURES` (float64).

    ``path`` is a pcap or pcapng file, possibly gzip-compressed. A flow ends ``flow_timeout``
    seconds after its first packet or ``idle_timeout`` seconds (default: ``flow_timeout``)
    after its last; flows of fewer than ``min_packets`` packets are dropped; ``bpf_filter``
    (tcpdump syntax) keeps only matching packets. Raises DataError for a file that cannot be
    read, is not a capture or is cut short.

    Usage (the tests build such files with scapy)::

        ids, features = flows_from_pcap("Monday-WorkingHours.pcap")
        ids[0], features.loc[0, "Flow Duration"]    # ('Monday-WorkingHours-0', <µs>)
    """
    path = Path(path)
    idle = _check(min_packets, flow_timeout, idle_timeout)
    if not path.is_file():
        raise DataError(f"no capture file {path}; pass a .pcap or .pcapng file ({', '.join(SUFFIXES)}, or .gz)")
    raw: dict[str, list[Any]] = {name: [] for name in _ATTRS}
    fd, scratch = tempfile.mkstemp(prefix="kstream-retimed-", suffix=".pcap")
    try:
        with os.fdopen(fd, "wb") as out:
            info = retime_file(path, out)
        log.info("%s: %d packets re-timed to µs for NFStream", path.name, info.packets)
        if info.packets:
            meter = _Meter(_streamer(scratch, idle * TIME_SCALE, flow_timeout * TIME_SCALE, bpf_filter=bpf_filter))
            try:
                while (flow := meter.next()) is not None:
                    if flow.bidirectional_packets >= min_packets:
                        _append(flow, raw)
            except ValueError as err:  # NFStream reports engine and libpcap errors so
                raise DataError(f"cannot meter flows in {path}: {err}") from err
            finally:
                meter.close()
    finally:
        os.unlink(scratch)
    order = np.lexsort(
        [raw[k] for k in ("protocol", "dst_port", "dst_ip", "src_port", "src_ip", "bidirectional_first_seen_ms")]
    )
    raw = {name: [values[i] for i in order] for name, values in raw.items()}
    stem = _stem(path)
    ids = pd.Series([f"{stem}-{n}" for n in range(len(order))], dtype="str", name="record_id")
    log.info("%s: %d flows of %d+ packets", path.name, len(ids), min_packets)
    return ids, flow_frame(raw, micros_per_tick=1.0)


def _check_interface(interface: str) -> None:
    names = sorted(name for _, name in socket.if_nameindex())
    if interface not in names:
        raise ConfigError(f"no network interface {interface!r}; choose one of: {', '.join(names)}")


def flows_from_interface(
    interface: str,
    *,
    batch_size: int = 1,
    max_flows: int = 0,
    flow_timeout: int = FLOW_TIMEOUT_S,
    idle_timeout: int | None = None,
    min_packets: int = 2,
    bpf_filter: str | None = None,
) -> Generator[tuple[pd.Series, pd.DataFrame], None, None]:
    """Flows metered live on ``interface``, yielded in batches of ``batch_size`` as they end.

    A flow ends as in :func:`flows_from_pcap`; on a live link a short ``idle_timeout`` (say 5 s)
    gets flows out sooner. Stops after ``max_flows`` flows (0: until the caller stops iterating or
    Ctrl-C). A batch is yielded when full, so a large batch waits for traffic. Times are whole
    milliseconds (x1000 µs): NFStream's clock. Needs the right to capture (root, or
    CAP_NET_RAW and CAP_NET_ADMIN); raises ConfigError when the interface cannot be opened.
    """
    idle = _check(min_packets, flow_timeout, idle_timeout)
    if batch_size < 1 or max_flows < 0:
        raise ConfigError(f"batch_size must be >= 1 and max_flows >= 0, not {batch_size} and {max_flows}")
    _check_interface(interface)
    log.warning("live capture on %s: flows are timed in whole milliseconds (exact µs only from files)", interface)
    start_ms = time.time_ns() // 1_000_000
    meter = _Meter(_streamer(interface, idle, flow_timeout, bpf_filter=bpf_filter))
    raw: dict[str, list[Any]] = {name: [] for name in _ATTRS}
    sent = 0
    try:
        while not max_flows or sent + len(raw["protocol"]) < max_flows:
            try:
                flow = meter.next()
            except ValueError as err:  # NFStream stopped its meters before raising
                raise ConfigError(
                    f"cannot capture on {interface}: {str(err).rstrip('.')}; "
                    "run as root or grant CAP_NET_RAW,CAP_NET_ADMIN"
                ) from err
            if flow is None:
                break
            if flow.bidirectional_packets < min_packets:
                continue
            _append(flow, raw)
            if len(raw["protocol"]) == batch_size:
                yield _batch(raw, f"{interface}-{start_ms}", sent)
                sent += batch_size
                raw = {name: [] for name in _ATTRS}
        if raw["protocol"]:
            yield _batch(raw, f"{interface}-{start_ms}", sent)
    finally:
        meter.close()


def _batch(raw: dict[str, list[Any]], prefix: str, first: int) -> tuple[pd.Series, pd.DataFrame]:
    ids = pd.Series([f"{prefix}-{first + n}" for n in range(len(raw["protocol"]))], dtype="str", name="record_id")
    return ids, flow_frame(raw, micros_per_tick=1000.0)
