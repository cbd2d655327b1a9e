"""The canonical CICFlowMeter vocabulary: one name per flow feature, whatever tool or release wrote it.

kstream names every CICFlowMeter feature as the corrected CICIDS2017 re-extraction ("improved")
does (:data:`CICIDS_FEATURES`). :func:`canonical_name` maps onto them the spellings of the 2017
releases (``Total Fwd Packets``, ``Init_Win_bytes_forward``, leading spaces; :data:`CICIDS_RENAMES`),
the abbreviations of CICFlowMeter-V3 as in CSE-CIC-IDS2018 (``Tot Fwd Pkts``, ``Flow Byts/s``) and
the lower-case, underscore spellings the Python CICFlowMeter writes (``tot_fwd_pkts``,
``flow_byts_s``) (:data:`CICFLOWMETER_V3_NAMES`): names are compared after folding case and every
run of other characters to ``_``, so ``Total Length of Fwd Packets`` and
``total_length_of_fwd_packets`` are one name.

>>> canonical_name(" Total Length of Fwd Packets"), canonical_name("totlen_fwd_pkts")
('Total Length of Fwd Packet', 'Total Length of Fwd Packet')
>>> canonical_name("Init Fwd Win Byts"), canonical_name("min_seg_size_forward"), canonical_name("colour")
('FWD Init Win Bytes', 'Fwd Seg Size Min', None)
"""

from __future__ import annotations

import re

__all__ = ["LEAKY", "is_leaky", "CICIDS_FEATURES", "CICIDS_RENAMES", "CICFLOWMETER_V3_NAMES", "CICIDS_DROPPED",
           "name_key", "canonical_name", "dropped_name"]

#: The canonical CICIDS2017 features: the corrected ("improved") release's names and order.
CICIDS_FEATURES = (
    "Dst Port", "Protocol", "Flow Duration", "Total Fwd Packet", "Total Bwd packets",
    "Total Length of Fwd Packet", "Total Length of Bwd Packet", "Fwd Packet Length Max",
    "Fwd Packet Length Min", "Fwd Packet Length Mean", "Fwd Packet Length Std", "Bwd Packet Length Max",
    "Bwd Packet Length Min", "Bwd Packet Length Mean", "Bwd Packet Length Std", "Flow Bytes/s",
    "Flow Packets/s", "Flow IAT Mean", "Flow IAT Std", "Flow IAT Max", "Flow IAT Min", "Fwd IAT Total",
    "Fwd IAT Mean", "Fwd IAT Std", "Fwd IAT Max", "Fwd IAT Min", "Bwd IAT Total", "Bwd IAT Mean",
    "Bwd IAT Std", "Bwd IAT Max", "Bwd IAT Min", "Fwd PSH Flags", "Bwd PSH Flags", "Fwd URG Flags",
    "Bwd URG Flags", "Fwd RST Flags", "Bwd RST Flags", "Fwd Header Length", "Bwd Header Length",
    "Fwd Packets/s", "Bwd Packets/s", "Packet Length Min", "Packet Length Max", "Packet Length Mean",
    "Packet Length Std", "Packet Length Variance", "FIN Flag Count", "SYN Flag Count", "RST Flag Count",
    "PSH Flag Count", "ACK Flag Count", "URG Flag Count", "CWR Flag Count", "ECE Flag Count",
    "Down/Up Ratio", "Average Packet Size", "Fwd Segment Size Avg", "Bwd Segment Size Avg",
    "Fwd Bytes/Bulk Avg", "Fwd Packet/Bulk Avg", "Fwd Bulk Rate Avg", "Bwd Bytes/Bulk Avg",
    "Bwd Packet/Bulk Avg", "Bwd Bulk Rate Avg", "Subflow Fwd Packets", "Subflow Fwd Bytes",
    "Subflow Bwd Packets", "Subflow Bwd Bytes", "FWD Init Win Bytes", "Bwd Init Win Bytes",
    "Fwd Act Data Pkts", "Fwd Seg Size Min", "Active Mean", "Active Std", "Active Max", "Active Min",
    "Idle Mean", "Idle Std", "Idle Max", "Idle Min", "ICMP Code", "ICMP Type", "Total TCP Flow Time",
)  # fmt: skip

#: 2017 (MachineLearningCVE / GeneratedLabelledFlows) name -> canonical name, built by comparing the
#: headers; the 62 other shared features are spelled alike. CWE is the 2017 typo for the CWR flag.
CICIDS_RENAMES = {
    "Source IP": "Src IP",
    "Source Port": "Src Port",
    "Destination IP": "Dst IP",
    "Destination Port": "Dst Port",
    "Total Fwd Packets": "Total Fwd Packet",
    "Total Backward Packets": "Total Bwd packets",
    "Total Length of Fwd Packets": "Total Length of Fwd Packet",
    "Total Length of Bwd Packets": "Total Length of Bwd Packet",
    "Min Packet Length": "Packet Length Min",
    "Max Packet Length": "Packet Length Max",
    "CWE Flag Count": "CWR Flag Count",
    "Avg Fwd Segment Size": "Fwd Segment Size Avg",
    "Avg Bwd Segment Size": "Bwd Segment Size Avg",
    "Fwd Avg Bytes/Bulk": "Fwd Bytes/Bulk Avg",
    "Fwd Avg Packets/Bulk": "Fwd Packet/Bulk Avg",
    "Fwd Avg Bulk Rate": "Fwd Bulk Rate Avg",
    "Bwd Avg Bytes/Bulk": "Bwd Bytes/Bulk Avg",
    "Bwd Avg Packets/Bulk": "Bwd Packet/Bulk Avg",
    "Bwd Avg Bulk Rate": "Bwd Bulk Rate Avg",
    "Init_Win_bytes_forward": "FWD Init Win Bytes",
    "Init_Win_bytes_backward": "Bwd Init Win Bytes",
    "act_data_pkt_fwd": "Fwd Act Data Pkts",
    "min_seg_size_forward": "Fwd Seg Size Min",
}

#: Source columns that never become features, by reason (canonical spelling).
CICIDS_DROPPED = {
    "identifiers": ("id", "Flow ID"),
    "addresses": ("Src IP", "Dst IP"),
    "ports": ("Src Port",),
    "timestamps": ("Timestamp",),
    "label-derived": ("Label", "Attempted Category"),
    "duplicates": ("Fwd Header Length.1",),
}

#: CICFlowMeter-V3 (CSE-CIC-IDS2018) abbreviation -> canonical name. Its snake_case form is what the
#: Python CICFlowMeter writes (e.g. ``tot_fwd_pkts``), so both spellings map through :func:`name_key`.
#: Abbreviations that fold onto a canonical name by themselves (``Flow Duration``) are not listed.
CICFLOWMETER_V3_NAMES = {
    "Tot Fwd Pkts": "Total Fwd Packet", "Tot Bwd Pkts": "Total Bwd packets",
    "TotLen Fwd Pkts": "Total Length of Fwd Packet", "TotLen Bwd Pkts": "Total Length of Bwd Packet",
    "Fwd Pkt Len Max": "Fwd Packet Length Max", "Fwd Pkt Len Min": "Fwd Packet Length Min",
    "Fwd Pkt Len Mean": "Fwd Packet Length Mean", "Fwd Pkt Len Std": "Fwd Packet Length Std",
    "Bwd Pkt Len Max": "Bwd Packet Length Max", "Bwd Pkt Len Min": "Bwd Packet Length Min",
    "Bwd Pkt Len Mean": "Bwd Packet Length Mean", "Bwd Pkt Len Std": "Bwd Packet Length Std",
    "Flow Byts/s": "Flow Bytes/s", "Flow Pkts/s": "Flow Packets/s",
    "Fwd IAT Tot": "Fwd IAT Total", "Bwd IAT Tot": "Bwd IAT Total",
    "Fwd Header Len": "Fwd Header Length", "Bwd Header Len": "Bwd Header Length",
    "Pkt Len Min": "Packet Length Min", "Pkt Len Max": "Packet Length Max", "Pkt Len Mean": "Packet Length Mean",
    "Pkt Len Std": "Packet Length Std", "Pkt Len Var": "Packet Length Variance",
    "FIN Flag Cnt": "FIN Flag Count", "SYN Flag Cnt": "SYN Flag Count", "RST Flag Cnt": "RST Flag Count",
    "PSH Flag Cnt": "PSH Flag Count", "ACK Flag Cnt": "ACK Flag Count", "URG Flag Cnt": "URG Flag Count",
    "ECE Flag Cnt": "ECE Flag Count", "Pkt Size Avg": "Average Packet Size",
    "Fwd Byts/b Avg": "Fwd Bytes/Bulk Avg", "Fwd Pkts/b Avg": "Fwd Packet/Bulk Avg",
    "Fwd Blk Rate Avg": "Fwd Bulk Rate Avg", "Bwd Byts/b Avg": "Bwd Bytes/Bulk Avg",
    "Bwd Pkts/b Avg": "Bwd Packet/Bulk Avg", "Bwd Blk Rate Avg": "Bwd Bulk Rate Avg",
    "Subflow Fwd Pkts": "Subflow Fwd Packets", "Subflow Fwd Byts": "Subflow Fwd Bytes",
    "Subflow Bwd Pkts": "Subflow Bwd Packets", "Subflow Bwd Byts": "Subflow Bwd Bytes",
    "Init Fwd Win Byts": "FWD Init Win Bytes", "Init Bwd Win Byts": "Bwd Init Win Bytes",
    "Fwd Act Data Pkt": "Fwd Act Data Pkts",
}  # fmt: skip


def name_key(name: str) -> str:
    """A column name folded for comparison: lower case, every run of other characters one ``_``.

    >>> name_key(" Flow Byts/s"), name_key("Down/Up Ratio")
    ('flow_byts_s', 'down_up_ratio')
    """
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")


def _lookup() -> tuple[dict[str, str], dict[str, str]]:
    features = {name_key(n): n for n in CICIDS_FEATURES}
    for old, new in (*CICIDS_RENAMES.items(), *CICFLOWMETER_V3_NAMES.items()):
        if new in CICIDS_FEATURES:
            features[name_key(old)] = new
    dropped = {name_key(n): n for names in CICIDS_DROPPED.values() for n in names}
    for old, new in (*CICIDS_RENAMES.items(), *CICFLOWMETER_V3_NAMES.items()):
        if new in dropped.values():
            dropped[name_key(old)] = new
    return features, dropped


_FEATURES, _DROPPED = _lookup()


def canonical_name(column: str) -> str | None:
    """The canonical feature a column holds, or None when it is not a CICFlowMeter feature."""
    return _FEATURES.get(name_key(column))


def dropped_name(column: str) -> str | None:
    """The canonical name of a column that is never a feature (ids, addresses, timestamps, labels), or None.

    >>> dropped_name(" Source IP"), dropped_name("src_port"), dropped_name("Flow Duration")
    ('Src IP', 'Src Port', None)
    """
    return _DROPPED.get(name_key(column))


#: Column names (normalised: lower case, runs of other characters -> "_") that identify a flow,
#: a host or a moment, or come from the ground truth. No dataset may offer them as features.
LEAKY = frozenset(
    {
        "id", "record_id", "flow_id", "sa", "da", "src_ip", "dst_ip", "source_ip", "destination_ip",
        "src_port", "source_port", "timestamp", "time_start", "time_end", "label", "attempted_category",
        "attack", "category", "difficulty", "class",
    }
)  # fmt: skip


def is_leaky(name: str) -> bool:
    """True for a column name that must never be a feature (see :data:`LEAKY`).

    >>> is_leaky(" Flow ID"), is_leaky("Src IP"), is_leaky("Dst Port"), is_leaky("dns_answer_ip_count")
    (True, True, False, False)
    """
    key = re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")
    return key in LEAKY or key.endswith(("_ip", "_id")) or "timestamp" in key or key.startswith("label")
