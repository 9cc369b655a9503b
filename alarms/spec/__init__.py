"""Alarm spec files: parse, validate, and turn each alarm into its exact PutMetricAlarm request.

A spec is YAML (``.yaml``/``.yml``) or TOML (``.toml``); both carry the same shape::

    version: 1                      # optional, the only format so far
    name: fraud                     # the spec's name: tag rollguard:spec=<name>; [A-Za-z0-9_.-]{1,64}
    defaults:                       # optional; any alarm key below except the metric itself
      period: 60                    # seconds: a multiple of 60 (not 10/20/30: see below)
      evaluation_periods: 5         # N
      datapoints_to_alarm: 3        # M (default: N)
      min_samples: 50               # sample-size guard (default 30)
      treat_missing_data: notBreaching
    endpoints:
      - name: fraud-ep              # SageMaker endpoint name
        variant: AllTraffic         # or `variants: [a, b]`: each alarm is made once per variant
        model_version: fraud-v6     # optional: the new fleet, used by `scope: model_version`
        alarms:
          - name: recall            # [A-Za-z0-9][A-Za-z0-9_-]{0,63}, unique per endpoint variant
            metric: recall          # see "What an alarm watches"
            threshold: 0.80
            comparison: "<"         # <, <=, >, >= or the CloudWatch operator name
            scope: model_version    # all (default) | model_version (only the new fleet)
            segment: {merchant_category: "5411"}   # optional: one segment attribute = value
            variant: v6-shadow      # optional: only this variant, instead of the endpoint's variant(s)
            guardrail: true         # listed in the guardrail's AutoRollbackConfiguration (default)
            fail_safe: true         # ALARM when rollguard's heartbeat is missing (default: = guardrail)
            # also: description, alarm_actions / ok_actions (<= 5 ARNs each), and all `defaults` keys
    comparisons:                    # optional; a spec needs endpoints or comparisons (or both)
      - name: fraud-v6-vs-v5        # [A-Za-z0-9][A-Za-z0-9_-]{0,63}, unique in the spec (gate/watch use it)
        endpoint: fraud-ep          # SageMaker endpoint name; need not be listed under endpoints
        baseline: {model_version: fraud-v5}    # {variant: ...}, {model_version: ...} or both
        candidate: {model_version: fraud-v6}
        metrics:                    # at least one of recall, precision, error_rate, latency_over
          recall: {tolerance: 0.02}             # in [0, 1): how much worse (absolute) is acceptable
          precision: {tolerance: 0.02}
          error_rate: {tolerance: 0.005}
          latency_over: {threshold_ms: 40, tolerance: 0.005}   # share of requests slower than 40 ms
        segments: [merchant_category]           # optional: judge every value of these attributes too
        min_samples: 30             # >= 1, per metric and segment before it is judged (default 30)
        alpha: 0.01                 # in (0, 1): false-FAIL level for the whole comparison (default 0.01)
        concurrent_within_s: 600    # optional: an unpaired capture is concurrent when the other arm was
                                    # served within this many seconds before it (default 600)
        guardrail: true             # its verdict alarm is in the guardrail's AutoRollbackConfiguration (default)
        # also: description, alarm_actions / ok_actions (<= 5 ARNs each; else those of `defaults`)

What an alarm watches (exactly one of):

- ``metric``: a rate built by metric math from the ``Sum`` of the count metrics, each count
  wrapped in ``FILL(id, 0)``: a count with no event in a period may not be published at all,
  and it must then read as an explicit 0 (a period of only false positives is precision 0,
  not a gap), whatever the publisher does with zeros:

  ================  ===========================  ================  ==================
  metric            value                        sample size n     default comparison
  ================  ===========================  ================  ==================
  precision         tp/(tp+fp)                   tp+fp             <
  recall            tp/(tp+fn)                   tp+fn             <
  f1                2tp/(2tp+fp+fn)              tp+fp+fn          <
  error_rate        errors/invocations           invocations       >
  label_coverage    labeled/invocations          invocations       <
  shadow_agreement  agreements/comparisons       comparisons       <
  pNN_latency       pNN of the Latency            SampleCount of    >
                    distribution (p99, p99.9)    Latency
  ================  ===========================  ================  ==================

- ``expression``: free metric math over the count ids of ``pipelines.metrics.COUNT_IDS``
  (``tp fp fn tn labeled invocations errors agreements comparisons expired orphan_labels
  evicted``, each the ``Sum`` of its count metric; no FILL is added, write ``FILL(fp, 0)``
  yourself) and the functions CloudWatch allows in alarms
  (``pipelines.cloudwatch_rules.ALARM_MATH_FUNCTIONS``). ``comparison`` is required;
  ``min_samples`` needs ``sample``, an expression over the same ids giving the sample size.
- ``gauge``: one of the daemon's gauges (``pipelines.metrics.GAUGES``: ``Precision``,
  ``RecallLowerBound``, ``ShadowAgreement``, ...) as a plain single-metric alarm with
  ``statistic`` (Average, Minimum or Maximum; default Average).
  Gauges are not published below the daemon's own min_samples, so ``min_samples`` is refused.

The sample-size guard is part of the math: ``IF(n >= min_samples, value, safe)``, where
``safe`` is a value on the non-breaching side of the threshold (the rate's natural bound when
that is on the safe side, e.g. 1 for ``precision < 0.9``, else the threshold itself for ``<``/``>``
or the threshold moved by max(1, |threshold|) for ``<=``/``>=``). A period with too few samples
is therefore OK, not breaching and not missing; ``treat_missing_data`` (default notBreaching)
only matters when CloudWatch has no data at all. ``pNN_latency`` with ``min_samples: 0`` is a
plain single-metric alarm with ``ExtendedStatistic: pNN``, the only shape that takes
``evaluate_low_sample_count_percentile: evaluate|ignore`` (sent as EvaluateLowSampleCountPercentile:
CloudWatch applies it to an alarm whose statistic is a percentile). A percentile's default
``min_samples`` is AWS's own significance rule for it: 10/(1-p) samples (1000 for p99, 10000
for p99.9), 10/p below the median, never under 30.

Fail-safe (``fail_safe``, default true for guardrail alarms, false for the others): the value is
read only where the daemon's ``Heartbeat`` is (``IF(alive > 0, value)``, ``alive`` the Sum of the
metric ``Heartbeat`` without dimensions) and TreatMissingData is ``breaching``, so with no
heartbeat, a dead daemon or a lost feed, the alarm goes to ALARM instead of reading OK; see
:func:`alarms.spec.requests.to_put_metric_alarm` for why missing rather than a FILLed breaching
value. A ``treat_missing_data`` in ``defaults`` applies to the fail-open alarms only; on a
fail-safe alarm itself anything but ``breaching`` is refused. Gauges and unguarded latency become
metric math over the same statistic; the heartbeat takes one of the 10 metrics a math alarm reads.
A fail-open alarm's request is what it was before fail-safe alarms existed.

Publishing lag: a period's counts reach CloudWatch up to a tick plus seconds after it ends, so
the newest period is missing or incomplete at every evaluation. A fail-safe alarm skips it (no
heartbeat yet: CloudWatch evaluates the most recent N periods with data); a fail-open alarm
reads it FILLed as a non-breaching value, so leave M < N. Every command warns when M = N on
60 s periods (:func:`spec_warnings`), and when a percentile guard is below AWS's rule.

Dimensions: ``EndpointName``, ``VariantName`` (the alarm's own ``variant``, else each of the
endpoint's); plus ``ModelVersion`` when ``scope: model_version``; plus the segment attribute
when ``segment`` is set. Shadow captures are counted under their own variant, so a shadow alarm
names it (``variant: v6-shadow``); an endpoint may then leave out ``variant``/``variants`` when
every alarm names its own.

Periods are multiples of 60 s. CloudWatch also takes 10, 20 and 30 s, but only over metrics
published at high resolution (``StorageResolution: 1``); rollguard publishes at 60 s, so such an
alarm would never see a datapoint, and the spec refuses it.

Comparisons (SPEC.md "Comparisons and verdicts"): :func:`comparisons` gives each as a
:class:`pipelines.comparison.config.Comparison`, which the daemon counts and the verdict engine
judges (``rollguard gate``, ``rollguard watch``). An arm matches captures of its ``variant``
and ``model_version``; an arm without a variant matches served (non-shadow) traffic only, so
``{model_version: fraud-v6}`` is the new fleet of a traffic shift and never the ``v6-shadow``
variant that carries the same model during the shadow phase: name a shadow variant to judge it.
Baseline and candidate must differ; an endpoint carries at most
``pipelines.comparison.config.MAX_PER_ENDPOINT`` (4) comparisons. Of ``defaults``, a comparison
takes only ``alarm_actions`` and ``ok_actions``.

Each comparison gets one verdict alarm, ``rollguard-{endpoint}-verdict-{comparison}``, owned and
synced like the others: on the metric ``Verdict`` (dimensions ``EndpointName``, ``Comparison``;
0 pass, 1 inconclusive, 2 fail), Maximum over 60 s, ALARM when it is FAIL (>= 2) in 1 of 1
periods. It is always fail-safe: ``IF(alive > 0 AND verdict >= 0, verdict)`` with
TreatMissingData breaching, so a missing verdict or a missing heartbeat reads as ALARM (see
:func:`alarms.spec.requests.to_put_metric_alarm`); start the daemon with the spec before a deploy
relies on it. It takes one of the guardrail's 10 alarm slots unless ``guardrail: false`` (a
shadow-phase comparison judged by ``rollguard gate`` before the deploy needs none).

Alarm names follow one convention::

    rollguard-{endpoint}-{fleet}-{alarm}     fleet = {variant}                  (scope: all)
                                             fleet = {variant}.{model_version}  (scope: model_version)

Endpoint and variant names cannot contain ``.`` (SageMaker's pattern), so the first ``.``
always separates variant and model version. A name must fit CloudWatch's 255 characters
(no truncation: a guardrail must be able to predict it), and two alarms of one spec may not
end up with the same name; both are refused at load time with the key path.

The package, by job: :mod:`~alarms.spec.schema` (the pydantic models), :mod:`~alarms.spec.expressions`
(checks on a spec's own metric math), :mod:`~alarms.spec.loader` (files, errors with key path and
line), :mod:`~alarms.spec.expand` (one :class:`Alarm` per variant, the names),
:mod:`~alarms.spec.verdicts` (comparisons and their verdict alarms), :mod:`~alarms.spec.guardrails`
(what a guardrail deploy lists), :mod:`~alarms.spec.requests` (the PutMetricAlarm requests and
CloudWatch's limits on them).
"""
from __future__ import annotations

from alarms.spec.advice import spec_warnings
from alarms.spec.expand import (
    NAME_PREFIX,
    OWNER_TAG,
    OWNER_VALUE,
    SPEC_TAG,
    Alarm,
    alarm_name,
    expand,
)
from alarms.spec.expressions import expression_ids, expression_problem
from alarms.spec.guardrails import guardrail_alarm_names, guardrail_alarms, guardrail_verdicts
from alarms.spec.loader import SpecError, load_spec, parse_spec
from alarms.spec.requests import AlarmLimitError, check_put_metric_alarm, safe_value, to_put_metric_alarm
from alarms.spec.schema import RATES, AlarmSpec, ArmSpec, ComparisonSpec, Defaults, EndpointSpec, SpecFile
from alarms.spec.verdicts import VerdictAlarm, comparisons, verdict_alarm_name, verdict_alarms
from pipelines import cloudwatch_rules, metrics

#: count id in metric math -> published count metric (pipelines.metrics.COUNT_IDS)
COUNT_METRICS = metrics.COUNT_IDS
#: comparison symbol -> ComparisonOperator (pipelines.cloudwatch_rules.COMPARISON_OPERATORS)
COMPARISONS = cloudwatch_rules.COMPARISON_OPERATORS

__all__ = [
    "COMPARISONS",
    "COUNT_METRICS",
    "NAME_PREFIX",
    "OWNER_TAG",
    "OWNER_VALUE",
    "RATES",
    "SPEC_TAG",
    "Alarm",
    "AlarmLimitError",
    "AlarmSpec",
    "ArmSpec",
    "ComparisonSpec",
    "Defaults",
    "EndpointSpec",
    "SpecError",
    "SpecFile",
    "VerdictAlarm",
    "alarm_name",
    "check_put_metric_alarm",
    "comparisons",
    "expand",
    "expression_ids",
    "expression_problem",
    "guardrail_alarm_names",
    "guardrail_alarms",
    "guardrail_verdicts",
    "load_spec",
    "parse_spec",
    "safe_value",
    "spec_warnings",
    "to_put_metric_alarm",
    "verdict_alarm_name",
    "verdict_alarms",
]
