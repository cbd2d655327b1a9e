"""The detector: consume flows in micro-batches, score them, write predictions, commit after the write.

Modules:

- ``loop``: :class:`loop.Detector`, one batch from poll to commit
- ``readahead``: the thread that polls and scores the next batch while the last one is written
- ``pool``: detectors as processes in one consumer group, and the generator beside them
- ``crashpoints``: fault injection for the tests (a detector that kills or freezes itself)
"""
