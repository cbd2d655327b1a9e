"""How the files of each registered dataset are read, one module per source format.

- :mod:`kstream.data.formats.reading`: the :class:`~kstream.data.formats.reading.Table` every reader returns,
  and the shared chunked, byte-counted reading of (gzipped) files;
- :mod:`kstream.data.formats.cicflowmeter`: CICFlowMeter CSVs of CICIDS2017, every dialect;
- :mod:`kstream.data.formats.netml`: NetML-challenge JSON lines with their annotation files;
- :mod:`kstream.data.formats.kdd`: NSL-KDD (and KDD Cup 99) files;
- :mod:`kstream.data.formats.times`: flow timestamps in every spelling the CICFlowMeter releases use.

A reader takes a file or a folder and returns a table: one record id per row, the feature columns
the source has as float64 in the format's canonical order, one label series per label level,
notes on every source column that was dropped or transformed, and, for NSL-KDD, which rows the
official test file holds. :mod:`kstream.data.datasets` turns a table into a
:class:`~kstream.data.datasets.Dataset`.
"""

from kstream.data.formats.cicflowmeter import read_cicflowmeter
from kstream.data.formats.kdd import read_nsl_kdd
from kstream.data.formats.netml import read_netml
from kstream.data.formats.reading import CHUNK_ROWS, Table

__all__ = ["CHUNK_ROWS", "Table", "read_cicflowmeter", "read_netml", "read_nsl_kdd"]
