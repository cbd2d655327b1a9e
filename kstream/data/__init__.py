"""Network-flow datasets: the registry of bundled and user data, the file formats, and leak-free splits.

Modules:

- ``datasets``: registered datasets, label levels, record ids, the split (:func:`datasets.load`)
- ``leakage``: identical feature vectors and the splits that keep them on one side; the temporal split
- ``order``: the order records are sent in (time, a seeded shuffle, or the file's)
- ``formats``: one reader per source format (CICFlowMeter CSV, NetML JSON, NSL-KDD)
"""
