"""Results stores: where predictions and drift windows are kept, idempotent on each record's source identity.

Modules:

- ``protocol``: the prediction row's fields and the :class:`protocol.Store` every store implements
- ``sqlite``: the SQLite store (the default) and :func:`sqlite.open_store`
- ``mongodb``: the MongoDB store (any MongoDB-wire server)
"""
