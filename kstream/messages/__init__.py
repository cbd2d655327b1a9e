"""What travels over Kafka besides the client library: the wire format of flows, labels and predictions, and
dead letters.

Modules:

- ``wire``: encoding and batch decoding of flow and prediction messages (JSON or float64 vectors)
- ``labels``: the label message (a record's class, late, keyed by its id) and its validation
- ``deadletters``: the bounded dead letter of a record the detector could not score
"""
