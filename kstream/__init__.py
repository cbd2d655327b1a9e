"""kstream: classify network flows as they stream through Apache Kafka.

A generator streams the records of a network-flow dataset into a Kafka topic; a detector
consumes them in micro-batches, predicts each record's class with a pretrained scikit-learn
Pipeline (binary benign/attack or multi-class attack type) and writes the predictions to a
results store and a predictions topic.

Subpackages by concept, bottom layer first (docs/architecture.md; ``tests/test_imports.py`` keeps
every import pointing down):

- :mod:`kstream.errors`: the named errors; :mod:`kstream.paths`, :mod:`kstream.logs`,
  :mod:`kstream.tables`, :mod:`kstream.retry`: paths, secret-safe logging, tables, retries
- :mod:`kstream.data`: the dataset registry, file formats (CSV, JSON, packets), leak-free splits
- :mod:`kstream.messages`: the wire format and dead letters; :mod:`kstream.clients`: the Kafka clients
- :mod:`kstream.drift`: training reference, drift windows, change detection, alerts
- :mod:`kstream.modeling`: the model zoo, training, model cards and trusted loading, scoring
- :mod:`kstream.stores`: the results stores (SQLite, MongoDB)
- :mod:`kstream.generator`: the generator; :mod:`kstream.servers`: local Kafka and FerretDB
- :mod:`kstream.settings`: the typed :class:`~kstream.settings.Settings` (CLI > environment > defaults)
- :mod:`kstream.detector`: the detector loop, its read-ahead, detector processes
- :mod:`kstream.analysis`: run summaries, the live view, the report and its figures
- :mod:`kstream.app`: the jobs; :mod:`kstream.sweep`: notebook sweeps; :mod:`kstream.cli`: the command
"""

from kstream.errors import BrokerError, ConfigError, DataError, KstreamError, ModelError, StoreError

__version__ = "0.1.0"

__all__ = ["__version__", "KstreamError", "ConfigError", "BrokerError", "DataError", "ModelError", "StoreError"]
