"""What travels over Kafka besides the client library: the wire format of flows and predictions, and dead letters.

Modules:

- ``wire``: encoding and batch decoding of flow and prediction messages (JSON or float64 vectors)
- ``deadletters``: the bounded dead letter of a record the detector could not score
"""
