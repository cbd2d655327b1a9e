"""NSL-KDD (and KDD Cup 99) files: 41 features, the attack name and the difficulty, no header.

>>> nsl_kdd_category("mailbomb", {}), nsl_kdd_category("xsnoop", {})
('dos', 'r2l')
"""

from __future__ import annotations

import logging
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
from kstream.errors import ConfigError, DataError
from kstream.paths import DATASETS_DIR

__all__ = [
    "NSL_KDD_PROTOCOLS",
    "NSL_KDD_SERVICES",
    "NSL_KDD_FLAGS",
    "NSL_KDD_TEST_ONLY_ATTACKS",
    "NSL_KDD_DROPPED",
    "nsl_kdd_category",
    "read_nsl_kdd",
]

log = logging.getLogger(__name__)

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
NSL_KDD_DROPPED = {"label-derived": ("attack", "difficulty")}
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
    warn_once("nsl-attack", attack, "NSL-KDD attack %r is in no category map; its category is 'unknown'", attack)
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


def read_nsl_kdd(path: Path, chunksize: int = CHUNK_ROWS, label_column: str | None = None) -> Table:
    """Read NSL-KDD files (KDD format: 41 features, attack name, difficulty; no header).

    ``path`` is a ``.txt``/``.txt.gz`` file or a folder of them; a subset file is skipped when its
    full file is there too (KDDTrain+_20Percent beside KDDTrain+, KDDTest-21 beside KDDTest+).
    When both a KDDTrain* and a KDDTest* file are read, ``test_mask`` marks the KDDTest* rows, and
    the split follows the official files. KDD Cup 99 rows (no difficulty, "normal.") read too.
    """
    if label_column:
        raise ConfigError("--label-column applies to CICFlowMeter CSVs; NSL-KDD files have a fixed layout")
    files = list_files(path, (".txt", ".txt.gz"), "NSL-KDD .txt files")
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
    with progress(files, f"reading {path.name}") as bar:
        for file in files:
            stem, row = file_stem(file), 0
            with open_bytes(file, bar) as (stream, tick):
                for chunk in csv_chunks(stream, chunksize, header=None):
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
                    blocks.append(float_block(chunk, tuple(names)))
                    test.append(np.full(len(chunk), _nsl_kind(stem) == "test"))
                    row += len(chunk)
                    tick()
    for name, count in outside.items():
        if count:
            log.warning("%d NSL-KDD %s values outside the fixed vocabulary: read as NaN", count, name)
    attack = concat_labels(attacks, "label")
    category = attack.map({a: nsl_kdd_category(a, categories) for a in attack.unique()}).astype("str")
    kinds = {_nsl_kind(file_stem(f)) for f in files}
    test_mask = np.concatenate(test) if kinds == {"train", "test"} else None
    return Table(
        concat_labels(ids, "record_id"),
        stack_blocks(blocks, tuple(names)),
        {"category": category.rename("label"), "attack": attack},
        dict(NSL_KDD_NOTES),
        test_mask,
    )
