"""Packets -> flows -> CICFlowMeter features, on pcaps built here with scapy.

Every expected value is worked out from the packet list of the test itself (times in µs,
payload sizes, flags), not read back from NFStream.
"""

from __future__ import annotations

import gzip
import itertools
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import PcapNgWriter, PcapWriter

from kstream.data.formats.capture import (
    CAPTURE_FEATURES,
    FEATURE_DEFINITIONS,
    LEFT_OUT,
    flows_from_interface,
    flows_from_pcap,
)
from kstream.data.formats.cicflowmeter import CICIDS_FEATURES
from kstream.errors import ConfigError, DataError

T0 = 1_499_000_000  # a CICIDS2017-era epoch second
CLIENT, SERVER, RESOLVER = "192.168.10.5", "192.168.10.50", "192.168.10.3"
ETHER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

# The TCP connection: (µs after T0, sent by the client?, payload bytes, flags)
TCP_PACKETS = [
    (0, True, 0, "S"),
    (150, False, 0, "SA"),
    (400, True, 0, "A"),
    (2_000, True, 100, "PA"),
    (3_500, False, 300, "PA"),
    (5_000, False, 200, "PA"),
    (10_000, True, 0, "FA"),
    (10_250, False, 0, "FA"),
    (10_300, True, 0, "A"),
]
UDP_START = 1_000_000  # one second later: two DNS-like queries and their answers
UDP_PACKETS = [
    (UDP_START, True, 40),
    (UDP_START + 700, False, 120),
    (UDP_START + 1_700, True, 40),
    (UDP_START + 2_100, False, 120),
]
ICMP_START = 2_000_000
LONE_SYN = 3_000_000  # a SYN nobody answers: a one-packet flow


def _stamp(packet, micros: int):
    packet.time = Decimal(T0) + Decimal(micros) / 1_000_000  # exact, also in nanosecond files
    return packet


def _tcp(micros: int, from_client: bool, size: int, flags: str):
    src, dst, sport, dport = (CLIENT, SERVER, 40_000, 80) if from_client else (SERVER, CLIENT, 80, 40_000)
    packet = ETHER / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=1000, ack=1)
    if size:
        packet = packet / Raw(b"x" * size)
    else:  # a bare segment is padded to Ethernet's 60-byte minimum on the wire: padding is not payload
        packet = Ether(bytes(packet) + b"\0" * 6)
    return _stamp(packet, micros)


def _packets() -> list:
    out = [_tcp(*p) for p in TCP_PACKETS]
    for micros, from_client, size in UDP_PACKETS:
        src, dst, sport, dport = (CLIENT, RESOLVER, 5353, 53) if from_client else (RESOLVER, CLIENT, 53, 5353)
        out.append(_stamp(ETHER / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(b"q" * size), micros))
    out.append(_stamp(ETHER / IP(src=CLIENT, dst=SERVER) / ICMP(type=8, id=7, seq=1) / Raw(b"p" * 56), ICMP_START))
    out.append(
        _stamp(ETHER / IP(src=SERVER, dst=CLIENT) / ICMP(type=0, id=7, seq=1) / Raw(b"p" * 56), ICMP_START + 300)
    )
    out.append(_stamp(ETHER / IP(src=CLIENT, dst=SERVER) / TCP(sport=40_001, dport=22, flags="S"), LONE_SYN))
    return out


def _write(path: Path, packets: list, **options) -> Path:
    writer = PcapNgWriter(str(path)) if path.suffix == ".pcapng" else PcapWriter(str(path), **options)
    for packet in packets:
        writer.write(packet)
    writer.close()
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("pcaps") / "mixed.pcap", _packets())


@pytest.fixture(scope="module")
def flows(sample):
    return flows_from_pcap(sample)


def _stats(values: list[float]) -> tuple[float, float, float, float]:
    """(max, min, mean, sample std) as CICFlowMeter's SummaryStatistics gives them."""
    return max(values), min(values), statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _gaps(times: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(times)]


def test_feature_set_is_the_canonical_subset_with_a_definition_each():
    assert list(CAPTURE_FEATURES) == [name for name in CICIDS_FEATURES if name in CAPTURE_FEATURES]
    assert set(FEATURE_DEFINITIONS) == set(CAPTURE_FEATURES)
    assert set(CAPTURE_FEATURES).isdisjoint(LEFT_OUT)
    assert set(CAPTURE_FEATURES) | set(LEFT_OUT) == set(CICIDS_FEATURES)
    assert all(text.strip() for text in [*FEATURE_DEFINITIONS.values(), *LEFT_OUT.values()])


def test_ids_are_file_stem_and_flow_order_and_single_packet_flows_are_dropped(flows):
    ids, features = flows
    assert list(ids) == ["mixed-0", "mixed-1", "mixed-2"]  # TCP, UDP, ICMP by first packet; the lone SYN dropped
    assert list(features.columns) == list(CAPTURE_FEATURES)
    assert (features.dtypes == np.float64).all()
    assert features["Protocol"].tolist() == [6, 17, 1]
    assert features["Dst Port"].tolist() == [80, 53, 0]


def test_tcp_connection_features_match_hand_computed_values(flows):
    row = flows[1].iloc[0]
    fwd = [p for p in TCP_PACKETS if p[1]]
    bwd = [p for p in TCP_PACKETS if not p[1]]
    fwd_sizes, bwd_sizes = [p[2] for p in fwd], [p[2] for p in bwd]
    all_sizes = [p[2] for p in TCP_PACKETS]
    duration = 10_300  # µs, last packet minus first: exact, not NFStream's whole milliseconds
    expected = {
        "Flow Duration": duration,
        "Total Fwd Packet": 5,
        "Total Bwd packets": 4,
        "Total Length of Fwd Packet": 100,
        "Total Length of Bwd Packet": 500,
        "Flow Bytes/s": 600 / (duration / 1e6),
        "Flow Packets/s": 9 / (duration / 1e6),
        "Fwd Packets/s": 5 / (duration / 1e6),
        "Bwd Packets/s": 4 / (duration / 1e6),
        "Fwd IAT Total": 10_300,
        "Bwd IAT Total": 10_100,
        "Fwd PSH Flags": 1,
        "Bwd PSH Flags": 2,
        "Fwd URG Flags": 0,
        "Bwd URG Flags": 0,
        "Fwd RST Flags": 0,
        "Bwd RST Flags": 0,
        "FIN Flag Count": 2,
        "SYN Flag Count": 2,
        "RST Flag Count": 0,
        "PSH Flag Count": 3,
        "ACK Flag Count": 8,
        "URG Flag Count": 0,
        "CWR Flag Count": 0,
        "ECE Flag Count": 0,
        "Down/Up Ratio": 0.8,
        "Average Packet Size": 600 / 9,
        "Fwd Segment Size Avg": 20,
        "Bwd Segment Size Avg": 125,
        "Packet Length Variance": statistics.variance(all_sizes),
    }
    for prefix, values in (("Fwd Packet Length", fwd_sizes), ("Bwd Packet Length", bwd_sizes)):
        expected.update(zip([f"{prefix} {s}" for s in ("Max", "Min", "Mean", "Std")], _stats(values)))
    assert (expected["Fwd Packet Length Std"], expected["Bwd Packet Length Std"]) == (pytest.approx(2000**0.5), 150)
    mx, mn, mean, std = _stats(all_sizes)
    expected.update(
        {"Packet Length Max": mx, "Packet Length Min": mn, "Packet Length Mean": mean, "Packet Length Std": std}
    )
    for prefix, packets in (("Flow", TCP_PACKETS), ("Fwd", fwd), ("Bwd", bwd)):
        mx, mn, mean, std = _stats(_gaps([p[0] for p in packets]))
        expected.update(
            {f"{prefix} IAT Max": mx, f"{prefix} IAT Min": mn, f"{prefix} IAT Mean": mean, f"{prefix} IAT Std": std}
        )
    assert (expected["Flow IAT Min"], expected["Flow IAT Max"], expected["Fwd IAT Max"]) == (50, 5_000, 8_000)
    assert set(expected) == set(CAPTURE_FEATURES) - {"Dst Port", "Protocol"}
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-9), name


def test_udp_exchange_features(flows):
    row = flows[1].iloc[1]
    times = [p[0] for p in UDP_PACKETS]
    assert row["Flow Duration"] == 2_100
    assert (row["Total Fwd Packet"], row["Total Bwd packets"]) == (2, 2)
    assert (row["Total Length of Fwd Packet"], row["Total Length of Bwd Packet"]) == (80, 240)  # UDP payload only
    assert (row["Fwd Packet Length Std"], row["Packet Length Mean"]) == (0, 80)
    assert row["Packet Length Std"] == pytest.approx(statistics.stdev([40, 120, 40, 120]))
    assert row["Flow IAT Mean"] == pytest.approx(statistics.mean(_gaps(times)))
    assert (row["Fwd IAT Total"], row["Fwd IAT Min"], row["Bwd IAT Max"]) == (1_700, 1_700, 1_400)
    assert row[[f"{f} Flag Count" for f in ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "CWR", "ECE")]].sum() == 0


def test_icmp_echo_features(flows):
    row = flows[1].iloc[2]
    assert (row["Flow Duration"], row["Flow IAT Min"], row["Total Fwd Packet"], row["Total Bwd packets"]) == (
        300,
        300,
        1,
        1,
    )
    assert (row["Total Length of Fwd Packet"], row["Bwd Packet Length Max"]) == (56, 56)  # after the 8-byte header
    assert (row["Fwd IAT Total"], row["Fwd IAT Mean"], row["Bwd IAT Total"]) == (0, 0, 0)  # one packet a side


def test_single_packet_flows_are_kept_on_request_with_cicflowmeter_zero_duration_rates(sample):
    ids, features = flows_from_pcap(sample, min_packets=1)
    assert len(ids) == 4
    lone = features.iloc[3]
    assert (lone["Dst Port"], lone["SYN Flag Count"], lone["Flow Duration"], lone["Total Bwd packets"]) == (22, 1, 0, 0)
    assert np.isnan(lone["Flow Bytes/s"])  # 0 bytes / 0 s, a Java double division gives NaN
    assert lone["Flow Packets/s"] == np.inf and lone["Fwd Packets/s"] == 0
    assert (lone["Bwd Packet Length Max"], lone["Bwd Segment Size Avg"], lone["Down/Up Ratio"]) == (0, 0, 0)


def test_same_flows_from_pcapng_gzip_and_nanosecond_files(tmp_path, flows):
    packets = _packets()
    variants = [
        _write(tmp_path / "mixed.pcapng", packets),
        _write(tmp_path / "nano.pcap", packets, nano=True),
        _write(tmp_path / "big-endian.pcap", packets, endianness=">"),
    ]
    gz = tmp_path / "mixed.pcap.gz"
    gz.write_bytes(gzip.compress(_write(tmp_path / "plain.pcap", packets).read_bytes()))
    for path in [*variants, gz]:
        ids, features = flows_from_pcap(path)
        assert ids.tolist() == [f"{path.name.split('.')[0]}-{n}" for n in range(3)]
        assert np.allclose(features.to_numpy(), flows[1].to_numpy(), rtol=1e-12, equal_nan=True), path.name


def test_a_flow_ends_flow_timeout_after_its_first_packet(tmp_path):
    # the same UDP 5-tuple at 0 s, 0.5 s, 1.5 s (still inside 2 s of the start), then 2.5 s and 2.6 s
    seconds = [0, 0.5, 1.5, 2.5, 2.6]
    packets = [
        _stamp(ETHER / IP(src=CLIENT, dst=RESOLVER) / UDP(sport=1111, dport=53) / Raw(b"z" * 10), int(s * 1e6))
        for s in seconds
    ]
    ids, features = flows_from_pcap(_write(tmp_path / "split.pcap", packets), flow_timeout=2, idle_timeout=2)
    assert features["Total Fwd Packet"].tolist() == [3, 2]
    assert features["Flow Duration"].tolist() == [1_500_000, 100_000]
    assert ids.tolist() == ["split-0", "split-1"]


def test_ids_and_features_are_the_same_on_every_run(sample, flows):
    ids, features = flows_from_pcap(sample)
    assert ids.equals(flows[0]) and features.equals(flows[1])


def test_bpf_filter_keeps_matching_packets_only(sample):
    ids, features = flows_from_pcap(sample, bpf_filter="udp")
    assert features["Protocol"].tolist() == [17] and ids.tolist() == ["mixed-0"]


@pytest.mark.parametrize(
    "content, words",
    [
        (b"not a capture file at all", "not a pcap or pcapng"),
        (b"", "empty"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "cut short inside the file header"),
    ],
)
def test_malformed_files_raise_one_line_data_errors(tmp_path, content, words):
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(DataError, match=words) as err:
        flows_from_pcap(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("cut", [-10, -40])  # inside the last packet's bytes, inside its record header
def test_truncated_pcap_raises_a_one_line_data_error(tmp_path, sample, cut):
    whole = sample.read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(whole[: len(whole) + cut])
    with pytest.raises(DataError, match="cut short inside") as err:
        flows_from_pcap(path)
    assert "\n" not in str(err.value) and "pcapfix" in str(err.value)


def test_truncated_pcapng_and_gzip_raise_data_errors(tmp_path):
    packets = _packets()
    ng = _write(tmp_path / "cut.pcapng", packets)
    ng.write_bytes(ng.read_bytes()[:-10])
    gz = tmp_path / "cut.pcap.gz"
    gz.write_bytes(gzip.compress(_write(tmp_path / "whole.pcap", packets).read_bytes())[:-20])
    for path in (ng, gz):
        with pytest.raises(DataError) as err:
            flows_from_pcap(path)
        assert "\n" not in str(err.value)


def test_flows_from_packets_refuse_a_label_delay_in_one_line(sample):
    from kstream.app import capture, label_plan
    from kstream.data import datasets
    from kstream.settings import Settings

    flows = datasets.load("cicids2017", sample)
    with pytest.raises(ConfigError, match=r"holds flows without labels \(a packet capture\): there is no label to "
                                          r"send; drop --label-delay"):
        label_plan(Settings(label_delay="10"), flows)
    assert label_plan(Settings(), flows) is None  # without a delay, nothing is asked of the data
    with pytest.raises(ConfigError, match="flows metered from packets have no labels to send"):
        capture(Settings(label_delay="1s"), pcap=sample)


def test_missing_file_and_bad_settings_fail_at_start(tmp_path, sample):
    with pytest.raises(DataError, match="no capture file"):
        flows_from_pcap(tmp_path / "absent.pcap")
    with pytest.raises(ConfigError, match="min_packets"):
        flows_from_pcap(sample, min_packets=0)
    with pytest.raises(ConfigError, match="timeouts"):
        flows_from_pcap(sample, flow_timeout=0)
    with pytest.raises(ConfigError, match="no network interface 'nope0'; choose one of: .*lo"):
        next(flows_from_interface("nope0"))


# --- live capture -----------------------------------------------------------------------------------

SIZES = (10, 20, 30)  # the client's datagrams; the server answers each flow with one of REPLY bytes
REPLY = 40


def _udp_flows(port: int, stop: threading.Event) -> None:
    """Until ``stop``: a new client socket every 0.2 s sends SIZES to ``port``, gets one REPLY back."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", port))
    server.settimeout(1)
    try:
        while not stop.is_set():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                for size in SIZES:
                    client.sendto(b"c" * size, ("127.0.0.1", port))
                    _, peer = server.recvfrom(2048)
                server.sendto(b"s" * REPLY, peer)
                client.recv(2048)
            stop.wait(0.2)
    finally:
        server.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root (or CAP_NET_RAW)")
def test_live_capture_on_loopback_yields_flows_and_stops_its_meters():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = threading.Event()
    traffic = threading.Thread(target=_udp_flows, args=(port, stop), daemon=True)
    batches = flows_from_interface("lo", batch_size=2, max_flows=4, idle_timeout=1, bpf_filter=f"udp port {port}")
    try:
        traffic.start()
        got = list(batches)
    finally:
        stop.set()
        traffic.join()
    ids = [i for batch_ids, _ in got for i in batch_ids]
    assert [len(b[0]) for b in got] == [2, 2] and len(set(ids)) == 4 and ids[0].startswith("lo-")
    frames = [frame for _, frame in got]
    whole = [row for frame in frames for _, row in frame.iterrows() if row["Total Fwd Packet"] == len(SIZES)]
    assert whole, "no complete flow among the first four"  # the first may have started before the capture
    row = whole[-1]
    assert (row["Dst Port"], row["Protocol"], row["Total Bwd packets"]) == (port, 17, 1)
    assert (row["Total Length of Fwd Packet"], row["Total Length of Bwd Packet"]) == (sum(SIZES), REPLY)
    assert row["Flow Duration"] % 1000 == 0  # live times are NFStream's whole milliseconds
    assert not multiprocessing.active_children()  # NFStream's meter processes were stopped


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root (or CAP_NET_RAW)")
def test_leaving_a_live_capture_early_stops_its_meters():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = threading.Event()
    traffic = threading.Thread(target=_udp_flows, args=(port, stop), daemon=True)
    batches = flows_from_interface("lo", idle_timeout=1, bpf_filter=f"udp port {port}")  # no end of its own
    try:
        traffic.start()
        ids, _ = next(batches)
        assert multiprocessing.active_children()  # NFStream meters in child processes
        batches.close()
    finally:
        stop.set()
        traffic.join()
    assert len(ids) == 1
    assert not multiprocessing.active_children()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to drop rights")
def test_live_capture_without_the_right_to_capture_is_a_one_line_config_error():
    script = (
        "from kstream.data.formats.capture import flows_from_interface\n"
        "from kstream.errors import ConfigError\n"
        "try:\n"
        "    next(flows_from_interface('lo'))\n"
        "except ConfigError as err:\n"
        "    print(err)\n"
    )
    drop = "-net_raw,-net_admin"
    out = subprocess.run(
        ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    message = out.stdout.strip()
    assert message.startswith("cannot capture on lo:") and "CAP_NET_RAW" in message and "\n" not in message


@pytest.mark.kafka
@pytest.mark.parametrize("value_format", ["json", "vector"])
def test_packets_to_kafka_to_predictions_through_the_cli(sample, flows, tmp_path, kafka_bootstrap, names, cli,
                                                         value_format, read_topic):
    models, store = str(tmp_path / "models"), tmp_path / "p.sqlite"
    trained = cli("-q", "train", "-m", "decision-tree", "--features", "capture", "--models-dir", models)
    assert trained.returncode == 0 and f"({len(CAPTURE_FEATURES)} features of what packets give" in trained.stdout
    common = ["--bootstrap", kafka_bootstrap, "--topic", names["topic"]]
    sent = cli("-q", "capture", str(sample), "--value-format", value_format, *common)
    ids, _ = flows
    assert sent.returncode == 0 and f"sent {len(ids)} flows" in sent.stdout, sent.stderr
    first = read_topic(kafka_bootstrap, names["topic"], 1)[0]
    assert (len(first.value) == 8 * len(CAPTURE_FEATURES)) == (value_format == "vector")
    detected = cli("-q", "detect", "-m", "decision-tree", "--models-dir", models, "--group", names["group"],
                   "--store-url", str(store), "--records", str(len(ids)), *common)
    assert detected.returncode == 0 and f"handled {len(ids)} records: {len(ids)} predicted" in detected.stdout
    import sqlite3

    with sqlite3.connect(store) as db:
        stored = {r[0] for r in db.execute("SELECT record_id FROM predictions")}
    assert stored == set(ids)  # the capture's record ids, one prediction each


@pytest.mark.kafka
def test_a_run_on_a_capture_trains_on_the_bundled_features_it_has_and_reports_without_truth(sample, flows, tmp_path,
                                                                                            kafka_bootstrap):
    from kstream import app
    from kstream.analysis import report
    from kstream.settings import Settings

    settings = Settings(model="decision-tree", models_dir=tmp_path / "models", bootstrap=kafka_bootstrap)
    result = app.run(settings, data=str(sample), run_dir=tmp_path / "run", progress=False)
    ids, _ = flows
    assert result.summary["records"] == len(ids) and "accuracy" not in result.summary
    card = app.artifacts.load(settings.model_ref()).card
    assert set(card.features) <= set(CAPTURE_FEATURES) and "restricted" in card.feature_selection["excluded_by_loader"]
    path = report.write_report(tmp_path / "run")
    assert "confusion_matrix" not in path.read_text() and (tmp_path / "run" / "figures" / "latency.png").exists()
