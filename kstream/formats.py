"""How the files of each registered dataset are read: CICFlowMeter CSV, NetML JSON lines, KDD.

A reader takes a file or a folder and returns a :class:`Table`: one record id per row, the
feature columns as float64 in a FIXED canonical order (a column a file lacks is NaN, so a model
trained on one dialect can score another), one label Series per label level, notes on every
source column that was dropped or transformed, and, for NSL-KDD, which rows the official test
file holds. :mod:`kstream.datasets` turns a table into a :class:`~kstream.datasets.Dataset`.

Full datasets run to gigabytes, so CSV and KDD files are read in chunks of ``chunksize`` rows and
JSON lines line by line; each chunk is reduced to ids, float features and labels before the next
is read, so memory is bounded by the result, never by the raw text of a file. A progress bar
counts bytes on stderr (tqdm hides it when stderr is not a terminal).

>>> fold_cicids_label("Web Attack \\x96 Sql Injection")
('Web Attack - SQL Injection', 'WebAttack')
>>> fold_cicids_label("PortScan"), fold_cicids_label("DoS")
(('Portscan', 'PortScan'), (None, 'DoS'))
>>> nsl_kdd_category("mailbomb", {}), nsl_kdd_category("xsnoop", {})
('dos', 'r2l')
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import orjson
import pandas as pd
from tqdm.auto import tqdm

from kstream.config import DATASETS_DIR
from kstream.errors import DataError

__all__ = [
    "CHUNK_ROWS",
    "Table",
    "CICIDS_FEATURES",
    "CICIDS_RENAMES",
    "CICIDS_LABELS",
    "CICIDS_GROUPS",
    "NETML_SCALARS",
    "NETML_HISTOGRAMS",
    "NETML_NUMERIC_LISTS",
    "NETML_TEXT_LISTS",
    "NETML_FEATURES",
    "NSL_KDD_PROTOCOLS",
    "NSL_KDD_SERVICES",
    "NSL_KDD_FLAGS",
    "NSL_KDD_TEST_ONLY_ATTACKS",
    "fold_cicids_label",
    "nsl_kdd_category",
    "read_cicflowmeter",
    "read_netml",
    "read_nsl_kdd",
]

log = logging.getLogger(__name__)

#: Rows per chunk when reading CSV/KDD files (JSON lines: flows per block, at most JSON_BLOCK_ROWS).
CHUNK_ROWS = 100_000
JSON_BLOCK_ROWS = 10_000  # a flow is a Python list until its block is converted: keep blocks small


@dataclass
class Table:
    """What a reader returns; every member is aligned row by row."""

    ids: pd.Series  # str
    features: pd.DataFrame  # float64, canonical column order
    levels: dict[str, pd.Series]  # level name -> label per row (str)
    notes: dict[str, str] = field(default_factory=dict)  # column group -> what was done and why
    test_mask: np.ndarray | None = None  # True on rows of an official test file


# --- shared plumbing ------------------------------------------------------------------------------


def _files(path: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """``path`` itself, or the files with one of ``suffixes`` directly inside the folder, sorted."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(suffixes))
    if not files:
        raise DataError(f"no {'/'.join(suffixes)} files in {path}; pass --data with {what}")
    return files


def file_stem(path: Path) -> str:
    """The name without ``.gz`` and the format suffix.

    >>> file_stem(Path("KDDTest+.txt.gz")), file_stem(Path("Monday.pcap_ISCX.csv"))
    ('KDDTest+', 'Monday.pcap_ISCX')
    """
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[0] if "." in name else name


def _progress(files: list[Path], desc: str) -> tqdm:
    total = sum(f.stat().st_size for f in files)
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=None, leave=False)


@contextmanager
def _open(file: Path, bar: tqdm) -> Iterator[tuple[IO[bytes], Callable[[], None]]]:
    """Open ``file`` (gzip or plain) as bytes; ``tick()`` moves the bar to the bytes read so far."""
    done = 0
    try:
        with open(file, "rb") as raw:

            def tick() -> None:
                nonlocal done
                pos = raw.tell()
                bar.update(pos - done)
                done = pos

            stream = gzip.GzipFile(fileobj=raw, mode="rb") if file.name.endswith(".gz") else raw
            yield stream, tick
            tick()
    except (OSError, EOFError, UnicodeError, pd.errors.ParserError, orjson.JSONDecodeError) as err:
        raise DataError(f"cannot read {file}: {err}") from err


def _csv_chunks(stream: IO[bytes], chunksize: int, **options) -> Iterator[pd.DataFrame]:
    # Bytes that are not UTF-8 (the cp1252 dash of the 2017 web-attack labels) become U+FFFD,
    # which label folding ignores; a whole-file latin-1 guess would garble real UTF-8 instead.
    with pd.read_csv(stream, chunksize=chunksize, encoding="utf-8", encoding_errors="replace", **options) as reader:
        yield from reader


def _float_block(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """``frame[columns]`` as float64; absent columns and non-numbers become NaN ("Infinity" is inf)."""
    out = np.full((len(frame), len(columns)), np.nan)
    for j, name in enumerate(columns):
        if name in frame.columns:
            col = frame[name]
            if not pd.api.types.is_numeric_dtype(col):
                col = pd.to_numeric(col, errors="coerce")
            out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _frame(blocks: list[np.ndarray], columns: tuple[str, ...]) -> pd.DataFrame:
    """One float64 frame from the chunks' blocks; the blocks are released as soon as they are copied."""
    matrix = np.concatenate(blocks) if blocks else np.empty((0, len(columns)))
    blocks.clear()
    return pd.DataFrame(matrix, columns=list(columns), copy=False)


def _series(parts: list[pd.Series], name: str) -> pd.Series:
    if not parts:
        return pd.Series([], dtype="str", name=name)
    return pd.concat(parts, ignore_index=True).astype("str").rename(name)


# --- CICIDS2017: CICFlowMeter CSVs ------------------------------------------------------------------

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
CICIDS_NOTES = {
    "identifiers": "id, Flow ID dropped: unique per flow, no signal (id and the capture day make the record id)",
    "addresses": "Src IP, Dst IP (Source IP, Destination IP in the 2017 CSVs) dropped: hosts of one testbed, "
    "a model keyed on them would not carry over to other networks",
    "ports": "Src Port dropped: ephemeral; Dst Port kept (it names the service)",
    "timestamps": "Timestamp dropped: the capture schedule tells the attack day, not the flow's behaviour",
    "label-derived": "Label, Attempted Category dropped: ground truth",
    "duplicates": "Fwd Header Length.1 dropped: the 2017 CICFlowMeter wrote Fwd Header Length twice (same values)",
    "non-finite": "inf and NaN kept as the sources have them (Flow Bytes/s, Flow Packets/s in the 2017 CSVs); "
    "the model pipeline imputes them",
}

#: Canonical CICIDS2017 class per label key (see :func:`label_key`): the improved release's spelling.
CICIDS_LABELS = {
    "benign": "BENIGN",
    "bot": "Botnet",
    "botnet": "Botnet",
    "ddos": "DDoS",
    "dosgoldeneye": "DoS GoldenEye",
    "doshulk": "DoS Hulk",
    "dosslowhttptest": "DoS Slowhttptest",
    "dosslowloris": "DoS Slowloris",
    "ftppatator": "FTP-Patator",
    "heartbleed": "Heartbleed",
    "infiltration": "Infiltration",
    "infiltrationportscan": "Infiltration - Portscan",
    "portscan": "Portscan",
    "sshpatator": "SSH-Patator",
    "webattackbruteforce": "Web Attack - Brute Force",
    "webattacksqlinjection": "Web Attack - SQL Injection",
    "webattackxss": "Web Attack - XSS",
}
#: Canonical class -> coarse group, as in the resampled CICIDS2017_sample.csv (Heartbleed joins DoS,
#: as in that sample's usual grouping; the improved release's Infiltration - Portscan joins PortScan,
#: because its flows are port scans, run from the infiltrated host).
CICIDS_GROUPS = {
    "BENIGN": "BENIGN",
    "Botnet": "Bot",
    "DDoS": "DoS",
    "DoS GoldenEye": "DoS",
    "DoS Hulk": "DoS",
    "DoS Slowhttptest": "DoS",
    "DoS Slowloris": "DoS",
    "Heartbleed": "DoS",
    "FTP-Patator": "BruteForce",
    "SSH-Patator": "BruteForce",
    "Infiltration": "Infiltration",
    "Infiltration - Portscan": "PortScan",
    "Portscan": "PortScan",
    "Web Attack - Brute Force": "WebAttack",
    "Web Attack - SQL Injection": "WebAttack",
    "Web Attack - XSS": "WebAttack",
}
#: Labels that only exist at the grouped level (a file holding them has no fine labels).
CICIDS_GROUP_ONLY = {"dos": "DoS", "bruteforce": "BruteForce", "webattack": "WebAttack", "webattacks": "WebAttack"}
_ATTEMPTED = "attempted"
_DASHES = re.compile("[\u0096\u2010-\u2015\ufffd]")
_warned: set[tuple[str, str]] = set()


def _warn_once(kind: str, value: str, message: str, *args: object) -> None:
    if (kind, value) not in _warned:
        _warned.add((kind, value))
        log.warning(message, *args)


def label_key(text: str) -> str:
    """Lower-case letters and digits only: folds case, spaces and every dash variant.

    >>> label_key("Web Attack \\ufffd Brute Force"), label_key("Web Attack – XSS"), label_key("PortScan")
    ('webattackbruteforce', 'webattackxss', 'portscan')
    """
    return re.sub(r"[^0-9a-z]+", "", str(text).lower())


def fold_cicids_label(raw: str) -> tuple[str | None, str]:
    """The canonical ``(fine, grouped)`` class of one CICIDS2017 label; fine is None for group-only labels.

    The improved release's "<class> - Attempted" labels keep their suffix and join their class's group.
    An unknown label is kept (dashes normalised) at both levels, with a warning.
    """
    key = label_key(raw)
    if key in CICIDS_LABELS:
        fine = CICIDS_LABELS[key]
        return fine, CICIDS_GROUPS[fine]
    if key in CICIDS_GROUP_ONLY:
        return None, CICIDS_GROUP_ONLY[key]
    base = key.removesuffix(_ATTEMPTED)
    if key.endswith(_ATTEMPTED) and base in CICIDS_LABELS:
        fine = CICIDS_LABELS[base]
        return f"{fine} - Attempted", CICIDS_GROUPS[fine]
    kept = " ".join(_DASHES.sub("-", str(raw)).split())
    _warn_once("cicids-label", kept, "unknown CICIDS2017 label %r kept as it is (no canonical class)", kept)
    return kept, kept


def _cicids_dialect(columns: list[str], file: Path) -> str:
    lower = {c.lower() for c in columns}
    if "label" not in lower:
        raise DataError(f"{file} has no Label column; is it a labelled CICFlowMeter CSV?")
    if "total fwd packet" in lower:
        return "improved"
    if "total fwd packets" in lower:
        if "flow id" in lower:
            return "GeneratedLabelledFlows"
        return "MachineLearningCVE" if "destination port" in lower else "csv-sample"
    raise DataError(
        f"{file} is not a CICIDS2017 CICFlowMeter CSV (no 'Total Fwd Packet' or 'Total Fwd Packets' column)"
    )


def _canonical_columns(columns: list[str]) -> list[str]:
    """Strip spaces, map 2017 names onto canonical ones (case-insensitively), keep names unique."""
    lookup = {name.lower(): name for name in CICIDS_FEATURES}
    lookup.update({old.lower(): new for old, new in CICIDS_RENAMES.items()})
    for dropped in CICIDS_DROPPED.values():
        lookup.update({name.lower(): name for name in dropped})
    out: list[str] = []
    for column in columns:
        name = str(column).strip()
        base = name = lookup.get(name.lower(), name)
        n = 0
        while name in out:  # names that only differ in surrounding spaces
            n += 1
            name = f"{base}.{n}"
        out.append(name)
    return out


def _cicids_chunk(
    chunk: pd.DataFrame, dialect: str, file: Path, first_row: int
) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Record ids, stripped raw labels and the float feature block of one chunk's labelled rows."""
    rows = np.arange(first_row, first_row + len(chunk))
    raw = chunk["Label"].astype("str").str.strip()
    keep = (chunk["Label"].notna() & (raw != "")).to_numpy()
    if not keep.all():
        chunk, raw, rows = chunk[keep], raw[keep], rows[keep]
    if dialect == "improved" and {"id", "Timestamp"} <= set(chunk.columns):
        # `id` restarts per capture day; (day, id) is unique over the whole release.
        rid = chunk["Timestamp"].astype("str").str.slice(0, 10) + "-" + chunk["id"].astype("str")
    else:
        rid = pd.Series([f"{file_stem(file)}-{r}" for r in rows], dtype="str")
    return rid.reset_index(drop=True), raw.reset_index(drop=True), _float_block(chunk, CICIDS_FEATURES)


def read_cicflowmeter(path: Path, chunksize: int = CHUNK_ROWS) -> Table:
    """Read CICIDS2017 CICFlowMeter CSVs of any dialect (detected per file from its header).

    Dialects: ``improved`` (corrected re-extraction: id, Timestamp, 83 features), ``MachineLearningCVE``
    (2017 names with leading spaces, Destination Port, no id), ``GeneratedLabelledFlows`` (the same
    plus Flow ID, addresses and Timestamp) and ``csv-sample`` (the 2017 features without Destination
    Port, grouped labels). Record id: capture day + "-" + id in the improved dialect, else
    "<file stem>-<row>" (row counted from 0 after the header). Rows with an empty Label are skipped.
    """
    files = _files(path, (".csv", ".csv.gz"), "CICFlowMeter CSV files")
    ids: list[pd.Series] = []
    fine: list[pd.Series] = []
    grouped: list[pd.Series] = []
    blocks: list[np.ndarray] = []
    dialects: dict[str, list[str]] = {}
    absent: dict[str, set[str]] = {}
    extra: set[str] = set()
    dropped_columns: set[str] = set()
    skipped = 0
    known = set(CICIDS_FEATURES).union(*CICIDS_DROPPED.values())
    with _progress(files, f"reading {path.name}") as bar:
        for file in files:
            with _open(file, bar) as (stream, tick):
                columns: list[str] | None = None
                row, file_fine = 0, []
                for chunk in _csv_chunks(stream, chunksize, low_memory=False):
                    if columns is None:
                        dialect = _cicids_dialect([str(c).strip() for c in chunk.columns], file)
                        columns = _canonical_columns(list(chunk.columns))
                        dialects.setdefault(dialect, []).append(file.name)
                        absent.setdefault(dialect, set()).update(set(CICIDS_FEATURES) - set(columns))
                        extra.update(set(columns) - known)
                        dropped_columns.update(set(columns) & (known - set(CICIDS_FEATURES)))
                    chunk.columns = columns
                    rid, raw, block = _cicids_chunk(chunk, dialect, file, row)
                    row += len(chunk)
                    skipped += len(chunk) - len(rid)
                    ids.append(rid)
                    folded = {label: fold_cicids_label(label) for label in raw.unique()}
                    file_fine.append(raw.map({k: v[0] for k, v in folded.items()}))
                    grouped.append(raw.map({k: v[1] for k, v in folded.items()}))
                    blocks.append(block)
                    tick()
            if columns is None:
                log.warning("%s holds no rows; skipped", file)
            elif any(part.isna().any() for part in file_fine):  # a grouped file: Bot is not Botnet there
                fine.extend(pd.Series(None, index=part.index, dtype="str") for part in file_fine)
            else:
                fine.extend(file_fine)
    if skipped:
        log.warning("skipped %d rows without a Label in %s (blank lines of the 2017 CSVs)", skipped, path)
    if extra:
        log.warning("ignored columns outside the canonical CICIDS2017 features: %s", ", ".join(sorted(extra)))
    fine_labels = pd.concat(fine, ignore_index=True) if fine else pd.Series([], dtype="str")
    levels = {"grouped": _series(grouped, "label")}
    if len(fine_labels) and fine_labels.notna().all():
        levels = {"label": _series([fine_labels], "label"), **levels}
    elif fine_labels.notna().any():
        log.warning("some files in %s hold grouped labels (e.g. DoS, WebAttack): level 'label' unavailable", path)
    notes = {
        group: note
        for group, note in CICIDS_NOTES.items()
        if group == "non-finite" or set(CICIDS_DROPPED[group]) & dropped_columns
    }
    notes["dialects"] = "; ".join(f"{d}: {len(names)} file(s)" for d, names in dialects.items())
    if set(dialects) - {"improved"}:
        notes["renamed"] = (
            "2017 column names mapped onto the improved release's (leading spaces stripped; e.g. Destination "
            "Port -> Dst Port, Total Fwd Packets -> Total Fwd Packet, Init_Win_bytes_forward -> FWD Init Win "
            "Bytes; the 23 renames are CICIDS_RENAMES in kstream/formats.py)"
        )
    missing = {d: sorted(cols, key=CICIDS_FEATURES.index) for d, cols in absent.items() if cols}
    if missing:
        notes["missing"] = "; ".join(f"not in {d} files, NaN there: {', '.join(cols)}" for d, cols in missing.items())
    if extra:
        notes["ignored"] = f"{', '.join(sorted(extra))} ignored: not in the canonical feature set"
    return Table(_series(ids, "record_id"), _frame(blocks, CICIDS_FEATURES), levels, notes)


# --- NetML challenge: JSON lines + annotation files ------------------------------------------------

#: Numeric scalar fields kept as they are.
NETML_SCALARS = (
    "dst_port", "pr", "time_length", "bytes_in", "bytes_out", "bytes_rate", "num_pkts_in", "num_pkts_out",
    "pld_bin_inf", "pld_distinct", "pld_max", "pld_mean", "pld_median", "hdr_bin_40", "hdr_distinct",
    "hdr_mean", "rev_pld_bin_128", "rev_pld_distinct", "rev_pld_max", "rev_pld_mean", "rev_pld_var",
    "rev_hdr_bin_40", "rev_hdr_distinct", "dns_query_cnt", "dns_answer_cnt", "tls_cnt", "tls_cs_cnt",
    "tls_ext_cnt", "tls_key_exchange_len", "tls_svr_cnt", "tls_svr_cs_cnt", "tls_svr_ext_cnt",
    "tls_svr_key_exchange_len", "http_code", "http_content_len", "http_method",
)  # fmt: skip
#: Fixed-length histograms -> columns ``<name>_<i>``; lengths as in every flow of the NetML releases.
#: A shorter list is padded with NaN and a longer one truncated (both logged).
NETML_HISTOGRAMS = {
    "pld_ccnt": 16,
    "hdr_ccnt": 12,
    "intervals_ccnt": 16,
    "ack_psh_rst_syn_fin_cnt": 5,
    "rev_pld_ccnt": 16,
    "rev_hdr_ccnt": 12,
    "rev_intervals_ccnt": 16,
    "rev_ack_psh_rst_syn_fin_cnt": 5,
}
#: Variable-length numeric lists -> ``<name>_count`` (0 when absent) and ``<name>_mean`` (NaN when empty).
NETML_NUMERIC_LISTS = (
    "dns_query_name_len", "dns_query_type", "dns_query_class", "dns_answer_ttl", "tls_len", "tls_svr_len",
)  # fmt: skip
#: Variable-length lists of strings (names, addresses, hex codes) -> ``<name>_count`` only.
NETML_TEXT_LISTS = ("dns_query_name", "dns_answer_ip", "tls_cs", "tls_ext_types", "tls_svr_cs", "tls_svr_ext_types")
NETML_DROPPED = {
    "identifiers": ("id",),
    "addresses": ("sa", "da"),
    "ports": ("src_port",),
    "timestamps": ("time_start", "time_end"),
    "text": ("http_host", "http_uri", "http_content_type"),
}
NETML_FEATURES = (
    NETML_SCALARS
    + tuple(f"{name}_{i}" for name, n in NETML_HISTOGRAMS.items() for i in range(n))
    + tuple(f"{name}_{stat}" for name in NETML_NUMERIC_LISTS for stat in ("count", "mean"))
    + tuple(f"{name}_count" for name in NETML_TEXT_LISTS)
)
NETML_NOTES = {
    "identifiers": "id dropped: unique per flow (it is the record id)",
    "addresses": "sa, da dropped: host addresses (masked in the NetML releases)",
    "ports": "src_port dropped: ephemeral; dst_port kept",
    "timestamps": "time_start, time_end dropped where present: capture time, not flow behaviour",
    "list-valued": "fixed-length histograms (" + ", ".join(NETML_HISTOGRAMS) + ") expanded to <name>_<i> "
    "columns (lengths in NETML_HISTOGRAMS; shorter lists padded with NaN, longer truncated); variable-length "
    "numeric lists (" + ", ".join(NETML_NUMERIC_LISTS) + ") summarised as <name>_count (0 when absent) and "
    "<name>_mean (NaN when empty); string lists (" + ", ".join(NETML_TEXT_LISTS) + ") reduced to "
    "<name>_count, their text dropped",
    "text": "http_host, http_uri, http_content_type dropped: free text; the wire format carries numbers only",
    "missing": "dns_*, tls_* and http_* fields exist only on DNS/TLS/HTTP flows: NaN elsewhere (list counts 0)",
}
NETML_LEVELS = ("top", "mid", "fine")


def _netml_set_file(path: Path) -> Path:
    if path.is_file():
        return path
    sets = [p for p in _files(path, (".json", ".json.gz"), "a NetML set file") if "_anno_" not in p.name]
    if len(sets) != 1:
        found = ", ".join(p.name for p in sets) or "none"
        raise DataError(f"{path} must hold exactly one NetML set file besides the *_anno_* files (found: {found})")
    return sets[0]


def _netml_annotations(set_file: Path) -> dict[str, Path]:
    """``<prefix>_anno_<level>.json[.gz]`` beside the set file or in the sibling ``<prefix>_annotations/``."""
    prefix = re.sub(r"_set$", "", file_stem(set_file))
    here = set_file.parent
    folders = [here, here / f"{prefix}_annotations", here.parent / f"{prefix}_annotations"]
    found: dict[str, Path] = {}
    for level in NETML_LEVELS:
        for folder in folders:
            for suffix in (".json", ".json.gz"):
                candidate = folder / f"{prefix}_anno_{level}{suffix}"
                if level not in found and candidate.is_file():
                    found[level] = candidate
        if level not in found:  # any single *_anno_<level> file beside the set file
            loose = [p for p in set_file.parent.glob(f"*_anno_{level}.json*") if p.name.endswith((".json", ".json.gz"))]
            if len(loose) == 1:
                found[level] = loose[0]
    if not found:
        raise DataError(
            f"no annotation files (<prefix>_anno_top/mid/fine.json[.gz]) beside {set_file}; NetML labels live there"
        )
    return found


def _read_json(file: Path) -> dict[str, str]:
    opener = gzip.open if file.name.endswith(".gz") else open
    try:
        with opener(file, "rb") as fh:
            data = orjson.loads(fh.read())
    except (OSError, EOFError, orjson.JSONDecodeError) as err:
        raise DataError(f"cannot read annotation file {file}: {err}") from err
    if not isinstance(data, dict):
        raise DataError(f"{file} is not a JSON object of flow id -> label")
    return {str(k): str(v) for k, v in data.items()}


def read_netml(path: Path, chunksize: int = CHUNK_ROWS) -> Table:
    """Read a NetML-challenge set (JSON lines, one flow per line) and its annotation files.

    ``path`` is the set file, or a folder with one set file and its ``*_anno_<level>`` files.
    Record id = ``str(id)``. Flows without a label in some annotation file are skipped (logged).
    """
    set_file = _netml_set_file(path)
    annotations = _netml_annotations(set_file)
    column = {name: j for j, name in enumerate(NETML_FEATURES)}
    scalars = {name: column[name] for name in NETML_SCALARS}
    histograms = {name: (column[f"{name}_0"], n) for name, n in NETML_HISTOGRAMS.items()}
    counts = {name: column[f"{name}_count"] for name in NETML_NUMERIC_LISTS + NETML_TEXT_LISTS}
    dropped = set().union(*NETML_DROPPED.values())
    nan = float("nan")
    template = [nan] * len(NETML_FEATURES)
    for j in counts.values():
        template[j] = 0.0  # an absent list holds nothing
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    rows: list[list[float]] = []
    unknown: set[str] = set()
    odd_lengths: dict[str, int] = {}
    not_numbers = 0
    block_rows = min(chunksize, JSON_BLOCK_ROWS)
    with _progress([set_file], f"reading {set_file.name}") as bar, _open(set_file, bar) as (stream, tick):
        for lineno, line in enumerate(stream):
            if not line.strip():
                continue
            try:
                flow = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise DataError(f"line {lineno + 1} of {set_file} is not JSON: {err}") from None
            if not isinstance(flow, dict) or "id" not in flow:
                raise DataError(f"line {lineno + 1} of {set_file} is not a flow object with an id")
            row = template.copy()
            for key, value in flow.items():
                if key in dropped:
                    continue
                if key in scalars:
                    if type(value) in (int, float):
                        row[scalars[key]] = value
                    elif value is not None:
                        not_numbers += 1
                    continue
                if key not in histograms and key not in counts:
                    unknown.add(key)
                    continue
                if not isinstance(value, list):
                    not_numbers += value is not None
                    continue
                if key in histograms:
                    start, n = histograms[key]
                    if len(value) != n:
                        odd_lengths[key] = odd_lengths.get(key, 0) + 1
                    for i, v in enumerate(value[:n]):
                        row[start + i] = v if type(v) in (int, float) else nan
                    continue
                j = counts[key]
                row[j] = len(value)
                if key in NETML_NUMERIC_LISTS and value:
                    try:
                        row[j + 1] = sum(value) / len(value)  # <name>_mean follows <name>_count
                    except TypeError:
                        not_numbers += 1
            ids.append(str(flow["id"]))
            rows.append(row)
            if len(rows) >= block_rows:
                blocks.append(np.array(rows, dtype=np.float64))
                rows = []
                tick()
    if rows:
        blocks.append(np.array(rows, dtype=np.float64))
    if unknown:
        log.warning("ignored NetML fields outside the known schema: %s", ", ".join(sorted(unknown)))
    if odd_lengths:
        log.warning("histograms of unexpected length padded/truncated: %s", odd_lengths)
    if not_numbers:
        log.warning("%d NetML values that should be numbers were not; read as NaN", not_numbers)
    record_ids = pd.Series(ids, dtype="str", name="record_id")
    levels = {level: record_ids.map(_read_json(file)) for level, file in annotations.items()}
    labelled = np.logical_and.reduce([labels.notna().to_numpy() for labels in levels.values()])
    features = _frame(blocks, NETML_FEATURES)
    if not labelled.all():
        log.warning("skipped %d flows of %s without a label in every annotation file", (~labelled).sum(), set_file)
        record_ids, features = record_ids[labelled].reset_index(drop=True), features[labelled].reset_index(drop=True)
        levels = {k: v[labelled].reset_index(drop=True) for k, v in levels.items()}
    levels = {k: v.astype("str").rename("label") for k, v in levels.items()}
    notes = dict(NETML_NOTES)
    if unknown:
        notes["ignored"] = f"{', '.join(sorted(unknown))} ignored: not in the known NetML schema"
    return Table(record_ids, features, levels, notes)


# --- NSL-KDD: KDD format ---------------------------------------------------------------------------

#: Fixed vocabularies of the symbolic features: the sorted values seen in KDDTrain+_20Percent and
#: KDDTest+. A feature's value is its position here; a value outside the list becomes NaN.
NSL_KDD_PROTOCOLS = ("icmp", "tcp", "udp")
NSL_KDD_SERVICES = (
    "IRC", "X11", "Z39_50", "auth", "bgp", "courier", "csnet_ns", "ctf", "daytime", "discard", "domain",
    "domain_u", "echo", "eco_i", "ecr_i", "efs", "exec", "finger", "ftp", "ftp_data", "gopher", "hostnames",
    "http", "http_443", "http_8001", "imap4", "iso_tsap", "klogin", "kshell", "ldap", "link", "login", "mtp",
    "name", "netbios_dgm", "netbios_ns", "netbios_ssn", "netstat", "nnsp", "nntp", "ntp_u", "other",
    "pm_dump", "pop_2", "pop_3", "printer", "private", "red_i", "remote_job", "rje", "shell", "smtp",
    "sql_net", "ssh", "sunrpc", "supdup", "systat", "telnet", "tftp_u", "tim_i", "time", "urh_i", "urp_i",
    "uucp", "uucp_path", "vmnet", "whois",
)  # fmt: skip
NSL_KDD_FLAGS = ("OTH", "REJ", "RSTO", "RSTOS0", "RSTR", "S0", "S1", "S2", "S3", "SF", "SH")
NSL_KDD_SYMBOLIC = {"protocol_type": NSL_KDD_PROTOCOLS, "service": NSL_KDD_SERVICES, "flag": NSL_KDD_FLAGS}

#: The 17 attacks that occur only in KDDTest+ and are missing from 'Attack Types.csv', with the
#: category the NSL-KDD literature gives them (Tavallaee et al., "A Detailed Analysis of the KDD CUP
#: 99 Data Set", IEEE CISDA 2009, and the NSL-KDD documentation; the test attacks come from the
#: DARPA 1998 evaluation's test data). Papers differ on a few names (httptunnel is sometimes r2l);
#: this table follows the commonly used mapping.
NSL_KDD_TEST_ONLY_ATTACKS = {
    "apache2": "dos",
    "mailbomb": "dos",
    "processtable": "dos",
    "udpstorm": "dos",
    "mscan": "probe",
    "saint": "probe",
    "httptunnel": "u2r",
    "ps": "u2r",
    "sqlattack": "u2r",
    "xterm": "u2r",
    "named": "r2l",
    "sendmail": "r2l",
    "snmpgetattack": "r2l",
    "snmpguess": "r2l",
    "worm": "r2l",
    "xlock": "r2l",
    "xsnoop": "r2l",
}
NSL_KDD_NOTES = {
    "identifiers": "none in the source; record id = <file stem>-<row>",
    "label-derived": "attack name and difficulty (how many of 21 learners got the record right) dropped: "
    "both come from the ground truth",
    "categorical": "protocol_type, service, flag encoded as integer codes: the position of the value in the "
    "fixed vocabularies NSL_KDD_PROTOCOLS / NSL_KDD_SERVICES / NSL_KDD_FLAGS (sorted values of "
    "KDDTrain+_20Percent and KDDTest+); a value outside them becomes NaN. The wire format carries numbers only",
}
_NSL_SUBSETS = {"KDDTrain+_20Percent": "KDDTrain+", "KDDTest-21": "KDDTest+"}  # subset file -> full file


def nsl_kdd_category(attack: str, table: dict[str, str]) -> str:
    """Category of an NSL-KDD attack name: from ``table`` ('Attack Types.csv'), else the test-only map,
    else ``unknown`` (logged once per name)."""
    if attack in table:
        return table[attack]
    if attack in NSL_KDD_TEST_ONLY_ATTACKS:
        return NSL_KDD_TEST_ONLY_ATTACKS[attack]
    _warn_once("nsl-attack", attack, "NSL-KDD attack %r is in no category map; its category is 'unknown'", attack)
    return "unknown"


def _nsl_kind(stem: str) -> str:
    return "test" if stem.startswith("KDDTest") else "train" if stem.startswith("KDDTrain") else "other"


def _nsl_side_file(folder: Path, name: str) -> Path:
    for candidate in (folder / name, DATASETS_DIR / "nsl-kdd" / name):
        if candidate.is_file():
            return candidate
    raise DataError(f"no '{name}' beside the NSL-KDD data in {folder} nor in the bundled datasets/nsl-kdd/")


def _nsl_field_names(folder: Path) -> list[str]:
    file = _nsl_side_file(folder, "Field Names.csv")
    names = [line.split(",")[0].strip() for line in file.read_text().splitlines() if line.strip()]
    if len(names) != 41:
        raise DataError(f"{file} names {len(names)} fields; NSL-KDD has 41")
    return names


def _nsl_attack_types(folder: Path) -> dict[str, str]:
    file = _nsl_side_file(folder, "Attack Types.csv")
    pairs = [line.split(",") for line in file.read_text().splitlines() if line.strip()]  # CR line ends
    return {attack.strip(): category.strip() for attack, category, *_ in pairs}


def read_nsl_kdd(path: Path, chunksize: int = CHUNK_ROWS) -> Table:
    """Read NSL-KDD files (KDD format: 41 features, attack name, difficulty; no header).

    ``path`` is a ``.txt``/``.txt.gz`` file or a folder of them; a subset file is skipped when its
    full file is there too (KDDTrain+_20Percent beside KDDTrain+, KDDTest-21 beside KDDTest+).
    When both a KDDTrain* and a KDDTest* file are read, ``test_mask`` marks the KDDTest* rows, and
    the split follows the official files. KDD Cup 99 rows (no difficulty, "normal.") read too.
    """
    files = _files(path, (".txt", ".txt.gz"), "NSL-KDD .txt files")
    stems = {file_stem(f) for f in files}
    files = [f for f in files if _NSL_SUBSETS.get(file_stem(f)) not in stems]
    folder = path if path.is_dir() else path.parent
    names = _nsl_field_names(folder)
    categories = _nsl_attack_types(folder)
    codes = {name: {value: float(i) for i, value in enumerate(vocab)} for name, vocab in NSL_KDD_SYMBOLIC.items()}
    ids: list[pd.Series] = []
    attacks: list[pd.Series] = []
    blocks: list[np.ndarray] = []
    test: list[np.ndarray] = []
    outside: dict[str, int] = {}
    with _progress(files, f"reading {path.name}") as bar:
        for file in files:
            stem, row = file_stem(file), 0
            with _open(file, bar) as (stream, tick):
                for chunk in _csv_chunks(stream, chunksize, header=None):
                    if chunk.shape[1] not in (42, 43):
                        raise DataError(
                            f"{file} has {chunk.shape[1]} columns; KDD rows hold 41 features, attack [, difficulty]"
                        )
                    chunk.columns = names + ["attack", "difficulty"][: chunk.shape[1] - 41]
                    for name, vocab in codes.items():
                        text = chunk[name].astype("str").str.strip()
                        coded = text.map(vocab)
                        outside[name] = outside.get(name, 0) + int(coded.isna().sum())
                        chunk[name] = coded.astype(np.float64)
                    ids.append(pd.Series([f"{stem}-{r}" for r in range(row, row + len(chunk))], dtype="str"))
                    attacks.append(chunk["attack"].astype("str").str.strip().str.rstrip(".").reset_index(drop=True))
                    blocks.append(_float_block(chunk, tuple(names)))
                    test.append(np.full(len(chunk), _nsl_kind(stem) == "test"))
                    row += len(chunk)
                    tick()
    for name, count in outside.items():
        if count:
            log.warning("%d NSL-KDD %s values outside the fixed vocabulary: read as NaN", count, name)
    attack = _series(attacks, "label")
    category = attack.map({a: nsl_kdd_category(a, categories) for a in attack.unique()}).astype("str")
    kinds = {_nsl_kind(file_stem(f)) for f in files}
    test_mask = np.concatenate(test) if kinds == {"train", "test"} else None
    return Table(
        _series(ids, "record_id"),
        _frame(blocks, tuple(names)),
        {"category": category.rename("label"), "attack": attack},
        dict(NSL_KDD_NOTES),
        test_mask,
    )
