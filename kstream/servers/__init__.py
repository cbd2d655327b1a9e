"""Local servers kstream starts itself, without Docker: a Kafka broker or cluster, and FerretDB for the MongoDB store.

Modules:

- ``provision``: Java and Kafka's jars fetched once with Maven
- ``broker``: :class:`broker.LocalBroker`, one KRaft node or a small cluster
- ``daemon``: the long-lived broker of ``kstream broker start|stop|status``
- ``retention``: the topics a long-lived broker keeps, by the run that made them, and their deletion
- ``scram``: SCRAM credentials of a secured local broker
- ``ferretdb``: a MongoDB-wire server built with Go
- ``processes``: free ports, liveness and stopping of server processes
"""
