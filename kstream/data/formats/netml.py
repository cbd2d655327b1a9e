"""NetML-challenge flows: a JSON-lines set file and its top/mid/fine annotation files.

Scalars stay as they are; fixed-length histograms expand to one column per bin; variable-length
lists become a count and a mean; string lists become a count (see :data:`NETML_NOTES`).

>>> len(NETML_FEATURES), NETML_FEATURES[:2]
(152, ('dst_port', 'pr'))
"""

from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd

from kstream.data.formats.reading import (
    CHUNK_ROWS,
    JSON_BLOCK_ROWS,
    Table,
    file_stem,
    list_files,
    open_bytes,
    progress,
    stack_blocks,
)
from kstream.errors import ConfigError, DataError

__all__ = [
    "NETML_SCALARS",
    "NETML_HISTOGRAMS",
    "NETML_NUMERIC_LISTS",
    "NETML_TEXT_LISTS",
    "NETML_DROPPED",
    "NETML_FEATURES",
    "NETML_LEVELS",
    "read_netml",
]

log = logging.getLogger(__name__)

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
    sets = [p for p in list_files(path, (".json", ".json.gz"), "a NetML set file") if "_anno_" not in p.name]
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


def read_netml(path: Path, chunksize: int = CHUNK_ROWS, label_column: str | None = None) -> Table:
    """Read a NetML-challenge set (JSON lines, one flow per line) and its annotation files.

    ``path`` is the set file, or a folder with one set file and its ``*_anno_<level>`` files.
    Record id = ``str(id)``. Flows without a label in some annotation file are skipped (logged).
    """
    if label_column:
        raise ConfigError("--label-column applies to CICFlowMeter CSVs; NetML labels live in its annotation files")
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
    with progress([set_file], f"reading {set_file.name}") as bar, open_bytes(set_file, bar) as (stream, tick):
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
    labelled: npt.NDArray[np.bool_] = np.logical_and.reduce([labels.notna().to_numpy() for labels in levels.values()])
    features = stack_blocks(blocks, NETML_FEATURES)
    if not labelled.all():
        log.warning("skipped %d flows of %s without a label in every annotation file", (~labelled).sum(), set_file)
        record_ids, features = record_ids[labelled].reset_index(drop=True), features[labelled].reset_index(drop=True)
        levels = {k: v[labelled].reset_index(drop=True) for k, v in levels.items()}
    levels = {k: v.astype("str").rename("label") for k, v in levels.items()}
    notes = dict(NETML_NOTES)
    if unknown:
        notes["ignored"] = f"{', '.join(sorted(unknown))} ignored: not in the known NetML schema"
    return Table(record_ids, features, levels, notes)
