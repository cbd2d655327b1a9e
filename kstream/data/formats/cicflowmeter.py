"""CICFlowMeter CSVs of CICIDS2017, in every dialect the releases use.

Dialects, detected per file from its header: ``improved`` (the corrected re-extraction: id,
Timestamp, 83 features), ``MachineLearningCVE`` (2017 names with leading spaces, Destination Port,
no id), ``GeneratedLabelledFlows`` (the same plus Flow ID, addresses and Timestamp) and
``csv-sample`` (the 2017 features without Destination Port, grouped labels). Columns map onto
the improved release's names (:data:`CICIDS_FEATURES`); labels fold to canonical classes at two
levels, ``label`` and ``grouped``.

>>> fold_cicids_label("Web Attack \\x96 Sql Injection")
('Web Attack - SQL Injection', 'WebAttack')
>>> fold_cicids_label("PortScan"), fold_cicids_label("DoS"), fold_cicids_label("1")
(('Portscan', 'PortScan'), (None, 'DoS'), ('Attack', 'Attack'))
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from kstream.data.formats.reading import (
    CHUNK_ROWS,
    Table,
    concat_labels,
    csv_chunks,
    file_stem,
    float_block,
    list_files,
    open_bytes,
    progress,
    stack_blocks,
    warn_once,
)
from kstream.data.formats.times import parse_times
from kstream.data.formats.vocabulary import (  # noqa: F401 - the feature names are re-exported
    CICIDS_DROPPED,
    CICIDS_FEATURES,
    CICIDS_RENAMES,
    canonical_name,
    dropped_name,
    name_key,
)
from kstream.errors import DataError

__all__ = [
    "CICIDS_FEATURES",
    "CICIDS_RENAMES",
    "CICIDS_DROPPED",
    "CICIDS_LABELS",
    "CICIDS_GROUPS",
    "label_key",
    "fold_cicids_label",
    "read_cicflowmeter",
    "read_feature_names",
]

log = logging.getLogger(__name__)

CICIDS_NOTES = {
    "identifiers": "id, Flow ID dropped: unique per flow, no signal (id and the capture day make the record id)",
    "addresses": "Src IP, Dst IP (Source IP, Destination IP in the 2017 CSVs) dropped: hosts of one testbed, "
    "a model keyed on them would not carry over to other networks",
    "ports": "Src Port dropped: ephemeral; Dst Port kept (it names the service)",
    "timestamps": "Timestamp dropped: the capture schedule tells the attack day, not the flow's behaviour (kept "
    "beside the features as the flow's time, to order a stream and split by time)",
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
#: Numeric binary labels (0 = benign, 1 = attack), as feature-selected releases often write them.
BINARY_LABELS = {"0": "BENIGN", "00": "BENIGN", "1": "Attack", "10": "Attack"}
_ATTEMPTED = "attempted"
_DASHES = re.compile("[\u0096\u2010-\u2015\ufffd]")


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
    if key in BINARY_LABELS and str(raw).strip().replace(".0", "") in ("0", "1"):
        return BINARY_LABELS[key], BINARY_LABELS[key]
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
    warn_once("cicids-label", kept, "unknown CICIDS2017 label %r kept as it is (no canonical class)", kept)
    return kept, kept


#: Fewer recognised feature columns than this and a CSV is not taken for CICFlowMeter output.
MIN_FEATURES = 3


def _cicids_dialect(columns: list[str], file: Path, label: str) -> str:
    """Which CICFlowMeter output wrote ``columns``; a clear DataError when none did, or the label is missing."""
    keys = {name_key(c) for c in columns}
    if name_key(label) not in keys:
        hint = "" if label != "Label" else "; pass --label-column NAME for the column that holds the class"
        raise DataError(f"{file} has no {label!r} column{hint}")
    features = [c for c in columns if canonical_name(c)]
    if len(features) < MIN_FEATURES:
        raise DataError(f"{file} is not CICFlowMeter output: {len(features)} of its columns are CICFlowMeter features "
                        f"(at least {MIN_FEATURES}, e.g. Flow Duration, Total Fwd Packets, Flow IAT Mean)")
    if "total_fwd_packet" in keys:
        return "improved"
    if "total_fwd_packets" in keys:
        if "flow_id" in keys:
            return "GeneratedLabelledFlows"
        return "MachineLearningCVE" if "destination_port" in keys else "csv-sample"
    if "tot_fwd_pkts" in keys:
        return "CICFlowMeter-V3"
    return "feature subset"


def _canonical_columns(columns: list[str], label: str) -> list[str]:
    """Every column under its canonical name (features, then never-features, then ``Label``); names kept unique."""
    label_key = name_key(label)
    out: list[str] = []
    for column in columns:
        name = str(column).strip()
        key = name_key(name)
        base = name = canonical_name(name) or dropped_name(name) or ("Label" if key == label_key else name)
        n = 0
        while name in out:  # names that only differ in surrounding spaces or spelling
            n += 1
            name = f"{base}.{n}"
        out.append(name)
    return out


def _cicids_chunk(
    chunk: pd.DataFrame, dialect: str, file: Path, first_row: int
) -> tuple[pd.Series, pd.Series, np.ndarray, pd.Series | None]:
    """Record ids, stripped raw labels, the float feature block and the times (None without a
    Timestamp column) of one chunk's labelled rows; a time that cannot be read is a DataError."""
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
    times = None
    if "Timestamp" in chunk.columns:
        times = parse_times(chunk["Timestamp"]).reset_index(drop=True)
        bad = np.flatnonzero(times.isna().to_numpy())
        if len(bad):
            value = chunk["Timestamp"].iloc[bad[0]]
            raise DataError(f"{file}: row {rows[bad[0]]} after the header has a Timestamp kstream cannot read "
                            f"({value!r}; it reads ISO 2017-07-03 08:55:58 or day-first 03/07/2017 08:55[:58] "
                            "[AM|PM]); fix or delete that row")
    return rid.reset_index(drop=True), raw.reset_index(drop=True), float_block(chunk, CICIDS_FEATURES), times


def read_cicflowmeter(path: Path, chunksize: int = CHUNK_ROWS, label_column: str | None = None) -> Table:
    """Read CICFlowMeter CSVs of any dialect, or any subset of their columns (detected per file).

    Dialects: ``improved`` (corrected re-extraction: id, Timestamp, 83 features), ``MachineLearningCVE``
    (2017 names with leading spaces, Destination Port, no id), ``GeneratedLabelledFlows`` (the same
    plus Flow ID, addresses and Timestamp), ``csv-sample`` (the 2017 features without Destination
    Port, grouped labels), ``CICFlowMeter-V3`` (the abbreviations of CSE-CIC-IDS2018 and, in
    snake_case, of the Python CICFlowMeter) and ``feature subset`` (a file holding some features
    under any of those spellings). Columns map onto :data:`CICIDS_FEATURES` names
    (:mod:`kstream.data.formats.vocabulary`). The class is in ``Label`` or ``label_column``: class names,
    or 0/1 (0 = benign, 1 = attack). Record id: capture day + "-" + id in the improved dialect, else
    "<file stem>-<row>" (row counted from 0 after the header). Rows with an empty label are skipped.

    Each flow's ``Timestamp`` (never a feature) becomes the table's ``times``
    (:func:`~kstream.data.formats.times.parse_times` reads every spelling of the releases); a time
    that cannot be read stops the load with one line naming the file and row. When some files of
    a folder have no Timestamp column, the table has no times (a warning names those files).
    """
    label = label_column or "Label"
    files = list_files(path, (".csv", ".csv.gz"), "CICFlowMeter CSV files")
    ids: list[pd.Series] = []
    fine: list[pd.Series] = []
    grouped: list[pd.Series] = []
    blocks: list[np.ndarray] = []
    dialects: dict[str, list[str]] = {}
    absent: dict[str, set[str]] = {}
    extra: set[str] = set()
    dropped_columns: set[str] = set()
    present: set[str] = set()  # canonical features some file really has
    times: list[pd.Series] = []
    untimed: list[str] = []  # files without a Timestamp column
    skipped = 0
    known = set(CICIDS_FEATURES).union(*CICIDS_DROPPED.values())
    with progress(files, f"reading {path.name}") as bar:
        for file in files:
            with open_bytes(file, bar) as (stream, tick):
                columns: list[str] | None = None
                row, file_fine = 0, []
                for chunk in csv_chunks(stream, chunksize, low_memory=False):
                    if columns is None:
                        dialect = _cicids_dialect([str(c).strip() for c in chunk.columns], file, label)
                        columns = _canonical_columns(list(chunk.columns), label)
                        dialects.setdefault(dialect, []).append(file.name)
                        absent.setdefault(dialect, set()).update(set(CICIDS_FEATURES) - set(columns))
                        extra.update(set(columns) - known)
                        present.update(set(columns) & set(CICIDS_FEATURES))
                        dropped_columns.update(set(columns) & (known - set(CICIDS_FEATURES)))
                    chunk.columns = columns
                    rid, raw, block, when = _cicids_chunk(chunk, dialect, file, row)
                    if when is None:
                        if not untimed or untimed[-1] != file.name:
                            untimed.append(file.name)
                    else:
                        times.append(when)
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
    levels = {"grouped": concat_labels(grouped, "label")}
    if len(fine_labels) and fine_labels.notna().all():
        levels = {"label": concat_labels([fine_labels], "label"), **levels}
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
            "column names mapped onto the improved release's (case, spaces and punctuation folded; e.g. "
            "Destination Port -> Dst Port, Total Fwd Packets / Tot Fwd Pkts / tot_fwd_pkts -> Total Fwd Packet, "
            "Init_Win_bytes_forward -> FWD Init Win Bytes; the tables are in kstream/data/formats/vocabulary.py)"
        )
    missing = {d: sorted(cols, key=CICIDS_FEATURES.index) for d, cols in absent.items() if cols}
    if missing:
        notes["missing"] = "; ".join(f"not in {d} files: {', '.join(cols)}" for d, cols in missing.items())
    if extra:
        notes["ignored"] = f"{', '.join(sorted(extra))} ignored: not in the canonical feature set"
    features = stack_blocks(blocks, CICIDS_FEATURES, keep=present)
    if untimed and times:
        shown = ", ".join(untimed[:5]) + (" ..." if len(untimed) > 5 else "")
        log.warning("%d file(s) in %s have no Timestamp column (%s): the data has no flow times (no time order, "
                    "no temporal split)", len(untimed), path, shown)
    flow_times = pd.concat(times, ignore_index=True).rename("time") if times and not untimed else None
    return Table(concat_labels(ids, "record_id"), features, levels, notes, times=flow_times)


def read_feature_names(path: Path) -> list[str]:
    """The canonical features the CSV files at ``path`` hold, from their headers only (canonical order).

    >>> from kstream.paths import DATASETS_DIR
    >>> len(read_feature_names(DATASETS_DIR / "cicids2017-csv-sample"))
    76
    """
    present: set[str] = set()
    for file in list_files(path, (".csv", ".csv.gz"), "CICFlowMeter CSV files"):
        try:
            header = pd.read_csv(file, nrows=0, encoding="utf-8", encoding_errors="replace").columns
        except (OSError, EOFError, UnicodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise DataError(f"cannot read the header of {file}: {err}") from err
        present.update(name for name in map(canonical_name, header) if name)
    return [name for name in CICIDS_FEATURES if name in present]
