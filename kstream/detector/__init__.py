"""The detector: consume flows in micro-batches, score them, write predictions, commit after the write.

Modules:

- ``loop``: :class:`loop.Detector`, one batch from poll to commit
- ``readahead``: the thread that polls and scores the next batch while the last one is written
- ``labels``: labels joined to predictions by record id in bounded memory, durable through the store
- ``prequential``: windows of labelled records, scored (accuracy, macro-F1, TPR/FAR, recall, label delay)
- ``pool``: detectors as processes in one consumer group, and the generator beside them
- ``crashpoints``: fault injection for the tests (a detector that kills or freezes itself)
"""
