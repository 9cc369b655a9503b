"""`rollguard backtest`: replay stored captures and labels through the daemon's pipeline on a
simulated clock, then evaluate an alarm spec with CloudWatch's rules and report when each of the
spec's comparisons changed state.

    rollguard backtest --captures PATH --labels PATH --spec F [--from T --to T]
        [--bad-from T [--bad-to T]] [--json] [--plot DIR] [--namespace N]
        [--model-version VARIANT=VERSION]... [--shadow-variant VARIANT]... [--fail-on-false-alarm]
        [--publish-lag S]

Inputs. PATH is a JSON-lines file, a directory of them (searched recursively for ``*.jsonl``,
``*.json`` and ``*.ndjson``; other files are ignored) or an ``s3://bucket/prefix/`` (boto3 with
ROLLGUARD_AWS_ENDPOINT_URL). Lines may be in rollguard's own capture/label form or in SageMaker's:

- Data Capture lines take endpoint and variant from the key layout
  ``{endpoint}/{variant}/yyyy/mm/dd/hh/file.jsonl`` (:func:`service.s3_import.layout.parse_key`), passed to
  the parser as the Kafka headers ``endpoint``/``variant`` exactly as `import-s3` does. The layout
  cannot tell model versions or shadow variants: ``--model-version`` / ``--shadow-variant`` add
  those headers, as for `import-s3`.
- Model Monitor ground-truth lines carry no time. Their label time is taken from the file's path
  ``.../yyyy/mm/dd/hh/file.jsonl`` *and* its line order: the i-th of the n non-blank lines of a
  file is stamped ``hour + i * 3600 s / n``. The hour alone would put a whole hour of outcomes into
  one tick (a burst no per-minute alarm would ever see in production), while spreading lines over
  the hour keeps the file's order and the hour's volume per period. It is passed as the Kafka
  record timestamp, which is where the parser looks for it; a ground-truth file outside the
  layout has no time and its lines are counted as bad (``missing_field``). Lines of several files
  of one hour interleave. Data Capture lines without ``inferenceTime`` get the same stamp.

Replay. Captures (by inference time) and labels (by label time) are merged into one stream in
event-time order; ties put captures first, then input order (file key, line number). Lines
without a usable event time go first: they are bad, and counted, whatever their position. The
stream goes through ONE :class:`pipelines.processor.PartitionPipeline` built from the settings
like the daemon's, on a :class:`pipelines.clock.MockedClock` set to each record's event time; the
pipeline ticks at every multiple of ROLLGUARD_TICK_SECONDS the clock passes and once more at the
next multiple after the last record, so label TTL/wait expiry follows simulated time. A
``future_timestamp`` cannot happen here: the clock is each record's own time. The whole input is
held in memory to be sorted. When the spec has gauge alarms the daemon's sliding-window gauges
are computed at every tick too.

Segments. The segment attributes of the spec's alarms and comparisons are added to
ROLLGUARD_SEGMENT_ATTRIBUTES for the replay (with a note on stderr: the daemon needs them
configured to publish them, and refuses a spec whose comparisons judge unlisted attributes).

Comparisons (SPEC.md "Comparisons and verdicts"; :mod:`service.backtest.comparisons`). The
spec's comparisons (:func:`alarms.spec.comparisons`) are counted by the replayed pipeline as by
the daemon's, and after every tick each is decided from that tick's counts with
:func:`pipelines.verdict.decide`, as the daemon's ``Verdict`` is; a change of state is judged in
full (:func:`pipelines.verdict.judge`) for the deciding test's figures. The first change is the
first tick's state (normally INCONCLUSIVE: no label yet), and ``final`` the state at the last
tick. ``at`` is the simulated tick, so a FAIL is reported when the labels that prove it had
arrived, not when the regression began. Comparisons are judged over the whole replay (--from /
--to and the bad interval bound the alarms only), and no comparison changes the exit code. A
spec may hold comparisons and no alarms: then there is no alarm table and no publishing lag.

Evaluation. Each alarm's PutMetricAlarm request (:func:`alarms.spec.to_put_metric_alarm`) reads,
for each MetricStat, exactly the datums with that namespace, metric name and dimension set (no
superset: CloudWatch never aggregates across dimensions for an alarm). It is run through
:func:`alarms.evaluator.timeline` from INSUFFICIENT_DATA over [--from, --to], by default from the
first record's event time to the last one's plus Period x EvaluationPeriods plus the publishing
lag. Outcome counts are stamped at label time, so they are published when they become known.

Publishing lag (`alarms.publish_lag`). The replay's ticks fall on multiples of the tick and drain
everything so far; a datum then reaches CloudWatch --publish-lag seconds after the tick that
drained it (default ROLLGUARD_TICK_SECONDS + 10: the daemon's ticks are not aligned to the minute,
so a period's last counts may wait up to one more tick, then the publisher and CloudWatch take
their seconds). Each evaluation sees only the datums arrived by then, as CloudWatch would. The
replayed daemon publishes its heartbeat (`pipelines.heartbeat`) for every tick of the evaluated
range and the look-back before it, with the same lag, so fail-safe alarms see a live monitor.

Definitions (per alarm):

- *evaluated period*: at each evaluation instant e (CloudWatch's cadence: every minute, every
  10 s for high resolution, hourly for alarms over more than a day) the most recent window
  [e - Period, e) and the alarm's value there once all its data has arrived (the period's real
  value, which CloudWatch sees only later); it is labelled with its start, as CloudWatch does.
- *bad interval*: [--bad-from, --bad-to], both ends included; --bad-to defaults to "open".
- *first bad datapoint*: the earliest evaluated period whose value breaches the threshold and
  whose start lies in the bad interval; with no bad interval, the earliest breaching period.
- *detected at*: the first instant at or after the first bad datapoint's start at which the alarm
  is in ALARM (its start when it is already in ALARM then); *detection delay* is that minus the
  first bad datapoint's start, so it is at least one Period (plus the publishing lag) unless the
  alarm was already firing.
- *false alarm*: an ALARM entry (a transition into ALARM) whose time lies outside the bad
  interval; with no bad interval every ALARM entry is a false alarm (the history is taken as good).
- *time in ALARM*: seconds in ALARM within the evaluated range.

Output: a table for people on stdout, after the replay summary (lines read, bad lines per reason
with the first few named by file and line, join counters), then one line per comparison: its
final state and its changes, e.g. ``comparison v6-vs-v5: final FAIL; changes:
2026-11-21T09:01:00Z INCONCLUSIVE (0 labels); 2026-11-21T09:12:00Z FAIL recall
merchant_category=5411 +23.38 pp [+3.96, +42.84] (77 labels)``. With --json the replay summary
goes to stderr and stdout is, for a spec without comparisons, a JSON list with one object per
alarm (:meth:`AlarmResult.to_json`), as it always was; for a spec with comparisons, an object
``{"alarms": [that list], "comparisons": [...]}``, one entry per comparison in spec order
(:meth:`~service.backtest.comparisons.ComparisonResult.to_json`)::

    {"name": "v6-vs-v5", "endpoint": "fraud-ep", "final": "FAIL",
     "changes": [
       {"at": "2026-11-21T09:01:00Z", "at_ms": 1795251660000, "state": "INCONCLUSIVE",
        "metric": null, "segment": null, "difference": null, "interval": null, "labels": 0},
       {"at": "2026-11-21T09:12:00Z", "at_ms": 1795252320000, "state": "FAIL",
        "metric": "recall", "segment": "merchant_category=5411", "difference": 0.2338,
        "interval": [0.0396, 0.4284], "labels": 77}]}

For a FAIL, ``metric`` and ``segment`` (``attribute=value``, null when pooled) name the deciding
test (the one Holm rejected first), ``difference`` is its harm estimate (positive = the candidate
is worse), ``interval`` the anytime-valid [lower, upper] of the harm (FAIL: lower above the
tolerance) and ``labels`` that test's sample. PASS and INCONCLUSIVE are not decided by one
test: those four are null and ``labels`` is the pooled sample of the comparison's first metric
at that tick. ``final`` is null (and ``changes`` empty) only when no line had an event time.
--plot DIR writes ``DIR/{alarm name}.png`` per alarm (matplotlib, Agg, no pyplot state).

Exit codes: 0 the backtest ran (whatever the alarms did); 1 with --fail-on-false-alarm when any
alarm fired outside the bad interval; 2 bad arguments, settings, spec or unreadable inputs (one
line on stderr). Bad lines are never fatal: they are counted per reason and reported.
"""
