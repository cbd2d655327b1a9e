"""kstream: classify network flows as they stream through Apache Kafka.

A generator streams the records of a network-flow dataset into a Kafka topic; a detector
consumes them in micro-batches, predicts each record's class with a pretrained scikit-learn
Pipeline (binary benign/attack or multi-class attack type) and writes the predictions to a
results store and a predictions topic.

Modules, one concept each, from the bottom up (a module imports only those above it):

- :mod:`kstream.errors`: the named errors; :mod:`kstream.config`: paths and the cache folder
- :mod:`kstream.formats`: the readers, one module per source format
- :mod:`kstream.datasets`: registered datasets, record ids, tasks, label levels, the split
- :mod:`kstream.features`: the feature selection step saved inside each Pipeline
- :mod:`kstream.zoo`: the models kstream trains, each a whole Pipeline
- :mod:`kstream.tables`, :mod:`kstream.scoring`: table formatting; the quality scores
- :mod:`kstream.artifacts`: which model (:class:`~kstream.artifacts.ModelRef`), its card, hash-checked loading
- :mod:`kstream.training`: training one model or a grid
- :mod:`kstream.settings`: the typed :class:`~kstream.settings.Settings` (CLI > environment > defaults)
- :mod:`kstream.broker`: a real local Kafka broker (KRaft) without Docker
- :mod:`kstream.clients`: the thin layer over the Kafka client library
- :mod:`kstream.serialization`: the message format and batch decoding
- :mod:`kstream.sinks`: the results store
- :mod:`kstream.generator`: the generator; :mod:`kstream.detector`: the detector loop
- :mod:`kstream.pool`: N detectors in one consumer group
- :mod:`kstream.metrics`: run summaries
- :mod:`kstream.app`: jobs wiring the parts (used by the CLI and notebooks)
- :mod:`kstream.plots`, :mod:`kstream.report`: the figures; a run folder read back, drawn, summarised
- :mod:`kstream.sweep`: the notebooks run by papermill over a parameter grid
- :mod:`kstream.cli`: the ``kstream`` command
"""

from kstream.errors import BrokerError, ConfigError, DataError, KstreamError, ModelError, StoreError

__version__ = "0.1.0"

__all__ = ["__version__", "KstreamError", "ConfigError", "BrokerError", "DataError", "ModelError", "StoreError"]
