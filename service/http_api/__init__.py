"""The daemon's HTTP API: ``/healthz``, ``/readyz``, ``/v1/status`` and ``/metrics``.

Pure rendering is kept apart from the server, one module each:

- :mod:`.document`: ``/v1/status`` (:func:`status_document`), what it may show of a record;
- :mod:`.prometheus`: ``/metrics``, a prometheus_client collector over that same document;
- :mod:`.rate_meter`: the record counter turned into a rate;
- :mod:`.alarm_states`: an alarm poller that caches CloudWatch alarm states, so a request
  never waits on AWS;
- :mod:`.server` (:func:`start_server`): a stdlib ``ThreadingHTTPServer`` in a daemon thread,
  with a sampler feeding the rate meter.

Contracts:

- ``/healthz`` answers 200 ``ok`` for as long as the process serves HTTP (liveness);
- ``/readyz`` answers 200 ``ready`` or 503 ``not ready: <one-line reason>``, from
  ``daemon.readiness()`` when the daemon has it, else from ``daemon.ready`` (partitions
  assigned and their state restored);
- ``/v1/status`` is ``daemon.status()`` plus ``alarms`` (the cached alarm states) and
  ``records_per_second``; it is what ``rollguard status`` prints;
- ``/metrics`` is Prometheus text exposition format 0.0.4 (prometheus_client's), rendered
  from that same status dict, so both views always agree.

What it exposes: the probes say only ok/ready and a short reason, and stay open for
orchestrators. ``/v1/status`` and ``/metrics`` carry counters, partition numbers, topic
names, the dimension values of the series (endpoint, variant, model version; clipped to
:data:`MAX_DIMENSION_CHARS`), alarm names and states, and error lines clipped by
:func:`public_text` so a record's contents cannot be read back through them; with a token
(``ROLLGUARD_HTTP_TOKEN`` / ``_FILE``) they need ``Authorization: Bearer <token>``.
Slow clients are bounded: :data:`REQUEST_TIMEOUT_SECONDS` to send a request's headers,
:data:`IDLE_TIMEOUT_SECONDS` of keep-alive idleness, and at most :data:`MAX_CONNECTIONS`
connections at once (the next is answered 503 without a thread).
"""
