"""Shared plumbing of the readers: the :class:`Table` they return and chunked, byte-counted reading.

Full datasets run to gigabytes, so CSV and KDD files are read in chunks of ``chunksize`` rows and
JSON lines line by line; each chunk is reduced to ids, float features and labels before the next
is read, so memory is bounded by the result, never by the raw text of a file. A progress bar
counts bytes on stderr (tqdm hides it when stderr is not a terminal).

>>> file_stem(Path("KDDTest+.txt.gz")), file_stem(Path("Monday.pcap_ISCX.csv"))
('KDDTest+', 'Monday.pcap_ISCX')
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import numpy as np
import orjson
import pandas as pd
from tqdm.auto import tqdm

from kstream.errors import DataError

__all__ = ["CHUNK_ROWS", "JSON_BLOCK_ROWS", "Table", "file_stem", "list_files", "progress", "open_bytes",
           "csv_chunks", "float_block", "stack_blocks", "concat_labels", "warn_once"]

log = logging.getLogger(__name__)

#: Rows per chunk when reading CSV/KDD files (JSON lines: flows per block, at most JSON_BLOCK_ROWS).
CHUNK_ROWS = 100_000
JSON_BLOCK_ROWS = 10_000  # a flow is a Python list until its block is converted: keep blocks small


@dataclass
class Table:
    """What a reader returns; every member is aligned row by row.

    ``features`` holds the feature columns the source really has, as float64 in the format's
    canonical order; a column that only some files of a folder have is NaN in the others.
    """

    ids: pd.Series  # str
    features: pd.DataFrame  # float64, canonical column order
    levels: dict[str, pd.Series]  # level name -> label per row (str)
    notes: dict[str, str] = field(default_factory=dict)  # column group -> what was done and why
    test_mask: np.ndarray | None = None  # True on rows of an official test file
    times: pd.Series | None = None  # datetime64[ns] per row (the flow's start), None without a time column


_warned: set[tuple[str, str]] = set()


def warn_once(kind: str, value: str, message: str, *args: object) -> None:
    """Log ``message`` as a warning the first time ``(kind, value)`` is seen in this process."""
    if (kind, value) not in _warned:
        _warned.add((kind, value))
        log.warning(message, *args)


def list_files(path: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """``path`` itself, or the files with one of ``suffixes`` directly inside the folder, sorted."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(suffixes))
    if not files:
        raise DataError(f"no {'/'.join(suffixes)} files in {path}; pass --data with {what}")
    return files


def file_stem(path: Path) -> str:
    """The name without ``.gz`` and the format suffix."""
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[0] if "." in name else name


def progress(files: list[Path], desc: str) -> tqdm:
    """A byte-counting progress bar over ``files`` (hidden when stderr is not a terminal)."""
    total = sum(f.stat().st_size for f in files)
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=None, leave=False)


@contextmanager
def open_bytes(file: Path, bar: tqdm) -> Iterator[tuple[IO[bytes], Callable[[], None]]]:
    """Open ``file`` (gzip or plain) as bytes; ``tick()`` moves the bar to the bytes read so far.

    Read errors of any kind surface as one :class:`~kstream.errors.DataError` naming the file.
    """
    done = 0
    try:
        with open(file, "rb") as raw:

            def tick() -> None:
                nonlocal done
                pos = raw.tell()
                bar.update(pos - done)
                done = pos

            # a GzipFile is a binary file object, but typeshed types it as BufferedIOBase, not IO[bytes]
            stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")) if file.name.endswith(".gz") else raw
            yield stream, tick
            tick()
    except (OSError, EOFError, UnicodeError, pd.errors.ParserError, orjson.JSONDecodeError) as err:
        raise DataError(f"cannot read {file}: {err}") from err


def csv_chunks(stream: IO[bytes], chunksize: int, **options) -> Iterator[pd.DataFrame]:
    """``pandas.read_csv`` in chunks; bytes that are not UTF-8 become U+FFFD.

    (The cp1252 dash of the 2017 web-attack labels becomes U+FFFD, which label folding ignores;
    a whole-file latin-1 guess would garble real UTF-8 instead.)
    """
    with pd.read_csv(stream, chunksize=chunksize, encoding="utf-8", encoding_errors="replace", **options) as reader:
        yield from reader


def float_block(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """``frame[columns]`` as float64; absent columns and non-numbers become NaN ("Infinity" is inf).

    >>> float_block(pd.DataFrame({"a": ["1", "x"], "b": [2.0, 3.0]}), ("b", "a", "c")).tolist()
    [[2.0, 1.0, nan], [3.0, nan, nan]]
    """
    out = np.full((len(frame), len(columns)), np.nan)
    for j, name in enumerate(columns):
        if name in frame.columns:
            col = frame[name]
            if not pd.api.types.is_numeric_dtype(col):
                col = pd.to_numeric(col, errors="coerce")
            out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def stack_blocks(blocks: list[np.ndarray], columns: tuple[str, ...], keep: set[str] | None = None) -> pd.DataFrame:
    """One float64 frame from the chunks' blocks (released as soon as they are copied).

    ``keep`` names the columns the source really has; the others are left out.
    """
    matrix = np.concatenate(blocks) if blocks else np.empty((0, len(columns)))
    blocks.clear()
    frame = pd.DataFrame(matrix, columns=list(columns), copy=False)
    if keep is not None and len(keep) < len(columns):
        frame = frame[[c for c in columns if c in keep]].copy()
    return frame


def concat_labels(parts: list[pd.Series], name: str) -> pd.Series:
    """The chunks' label series as one str series."""
    if not parts:
        return pd.Series([], dtype="str", name=name)
    return pd.concat(parts, ignore_index=True).astype("str").rename(name)
