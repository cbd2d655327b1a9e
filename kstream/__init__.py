"""kstream: classify network flows as they stream through Apache Kafka.

A generator streams the records of a network-flow dataset into a Kafka topic;
a detector consumes them in micro-batches, predicts each record's class with a
pretrained scikit-learn Pipeline (binary benign/attack or multi-class attack
type) and writes the predictions to a results store and a predictions topic.

Modules, one concept each:

- :mod:`kstream.config`: paths and the typed :class:`~kstream.config.Settings`
- :mod:`kstream.datasets`: registered datasets, record ids, label levels, the split
- :mod:`kstream.formats`: readers of the file formats (CICFlowMeter CSV, NetML JSON lines, KDD)
- :mod:`kstream.features`: the feature selection step saved inside each Pipeline
- :mod:`kstream.modeling`: the model zoo: train/save/load Pipelines with their cards, evaluation
- :mod:`kstream.broker`: a real local Kafka broker (KRaft) without Docker
- :mod:`kstream.clients`: the thin layer over the Kafka client library
- :mod:`kstream.serialization`: the message format and batch decoding
- :mod:`kstream.producer`: the generator
- :mod:`kstream.consumer`: the detector loop
- :mod:`kstream.sinks`: the results store
- :mod:`kstream.metrics`: run summaries
- :mod:`kstream.app`: jobs wiring the parts (used by the CLI and notebooks)
- :mod:`kstream.plots`: the figures, as functions of data frames
- :mod:`kstream.report`: a run folder read back, drawn and summarised
- :mod:`kstream.sweep`: the notebooks run by papermill over a parameter grid
- :mod:`kstream.cli`: the ``kstream`` command
"""

from kstream.errors import BrokerError, ConfigError, DataError, KstreamError, ModelError

__version__ = "0.1.0"

__all__ = ["__version__", "KstreamError", "ConfigError", "BrokerError", "DataError", "ModelError"]
