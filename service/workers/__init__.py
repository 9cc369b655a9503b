"""`rollguard run --workers N`: N daemon processes in one consumer group on one host.

Each worker is a whole daemon (``rollguard run --worker I``: its own consumer in the group, its
own publisher, dead-letter producer and checkpoints in the shared state location, its own HTTP
API on an ephemeral loopback port). They share nothing but the group protocol and the state
location, so partitions move between workers exactly as between instances and the exactness
guarantee is the one instances already have.

- :mod:`.link`: the pipes between parent and worker (the worker reports its API address; a
  worker whose parent is gone drains and exits);
- :mod:`.supervisor`: the parent's process management (start, restart with backoff, drain);
- :mod:`.view`: the parent's HTTP API over the workers' (``/readyz``, ``/v1/status``, ``/metrics``);
- :mod:`service.http_api.aggregate`: the pure merge of the workers' status documents.
"""
