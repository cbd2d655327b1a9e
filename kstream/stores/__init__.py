"""Results stores: where predictions, drift windows, labels and prequential windows are kept, idempotent on each
record's source identity (a label's: its flows topic and record id).

Modules:

- ``protocol``: the prediction, label and prequential window rows and the :class:`protocol.Store` every store
  implements
- ``sqlite``: the SQLite store (the default) and :func:`sqlite.open_store`
- ``mongodb``: the MongoDB store (any MongoDB-wire server)
"""
