"""Plan and apply the difference between an alarm spec and the alarms in CloudWatch.

Ownership: an alarm belongs to a spec when its name starts with ``rollguard-`` and it carries
both tags ``rollguard:owner=rollguard`` and ``rollguard:spec=<spec name>`` (set by
PutMetricAlarm when the alarm is created). Only such alarms are ever updated or deleted.
A spec alarm whose name is taken by an alarm this spec does not own is a ``conflict``:
``apply`` refuses to run until it is resolved by hand, and changes nothing.

A spec's alarms are its endpoints' alarms and its comparisons' verdict alarms
(``rollguard-{endpoint}-verdict-{comparison}``), owned, planned, applied and deleted alike.

Comparison is field by field on a normalised, flattened view (:func:`comparable`), so what
CloudWatch echoes back differently (defaults left out, ``Dimensions: []`` on math alarms,
``5`` vs ``5.0``, dimension and query order) never shows up as a change. Tags are not
compared: PutMetricAlarm ignores tags on update.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from alarms.spec import (
    NAME_PREFIX,
    OWNER_TAG,
    OWNER_VALUE,
    SPEC_TAG,
    Alarm,
    SpecFile,
    VerdictAlarm,
    check_put_metric_alarm,
    expand,
    to_put_metric_alarm,
    verdict_alarms,
)
from pipelines import cloudwatch_rules as rules

Action = Literal["create", "update", "delete", "unchanged", "conflict"]

_DELETE_BATCH = 100  # DeleteAlarms takes at most 100 names per call


class AlarmClient(Protocol):
    """The part of a boto3 CloudWatch client that sync uses (keyword arguments as in boto3)."""

    def get_paginator(self, operation_name: str) -> Any: ...

    def put_metric_alarm(self, **kwargs: Any) -> Any: ...

    def delete_alarms(self, **kwargs: Any) -> Any: ...

    def list_tags_for_resource(self, **kwargs: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One differing field of the flattened view, e.g. ``Metrics[value].Expression``."""

    field: str
    current: object
    desired: object


@dataclass(frozen=True, slots=True)
class Change:
    """What plan found for one alarm; ``request`` is the desired PutMetricAlarm (None for delete)."""

    action: Action
    alarm_name: str
    request: Mapping[str, Any] | None = None
    diffs: tuple[FieldDiff, ...] = ()
    detail: str = ""

    def describe(self, verb: str | None = None) -> str:
        """One line for people: action (or ``verb``), name, and what differs or why."""
        text = f"{verb or self.action:<9} {self.alarm_name}"
        if self.diffs:
            text += "  " + "; ".join(_show_diff(d) for d in self.diffs)
        if self.detail:
            text += f"  ({self.detail})"
        return text


class SyncError(RuntimeError):
    """Apply refused to start (conflicts, requests CloudWatch would refuse); ``changes`` is the plan."""

    def __init__(self, message: str, changes: Sequence[Change] = ()) -> None:
        super().__init__(message)
        self.changes = tuple(changes)


class PartialApplyError(SyncError):
    """A PutMetricAlarm or DeleteAlarms call failed mid-way: ``applied`` were made, ``not_applied``
    (``failed``, the changes of that call, first, then every later one) were not; ``cause`` is
    what the call raised."""

    def __init__(self, failed: Sequence[Change], cause: BaseException, applied: Sequence[Change],
                 not_applied: Sequence[Change]) -> None:
        operation = "DeleteAlarms" if failed[0].action == "delete" else "PutMetricAlarm"
        more = f" (and {len(failed) - 1} more in the same call)" if len(failed) > 1 else ""
        #: which call failed, for people: ``PutMetricAlarm failed for rollguard-...``
        self.what = f"{operation} failed for {failed[0].alarm_name}{more}"
        super().__init__(f"{self.what} after {len(applied)} of {len(applied) + len(not_applied)} changes",
                         (*applied, *not_applied))
        self.operation = operation
        self.failed = tuple(failed)
        self.cause = cause
        self.applied = tuple(applied)
        self.not_applied = tuple(not_applied)


def _show(value: object) -> str:
    if value is None:
        return "(unset)"
    return repr(value) if isinstance(value, str) else str(value)


def _show_diff(d: FieldDiff) -> str:
    before, after = _show(d.current), _show(d.desired)
    if len(before) + len(after) > 100:  # long texts (descriptions, expressions) would drown the line
        return f"{d.field} changed"
    return f"{d.field}: {before} -> {after}"


# ---------------------------------------------------------------------------------------------
# normalisation


def comparable(alarm: Mapping[str, Any]) -> dict[str, object]:
    """A flat, normalised view of a PutMetricAlarm request or a DescribeAlarms MetricAlarm entry.

    Defaults are filled in on both sides, empty values dropped, numbers made float/int,
    dimensions and metric queries made order-independent; read-only fields are ignored.
    """
    out: dict[str, object] = {}

    def put(key: str, value: object) -> None:
        if value is None or value == "" or value == ():
            return
        out[key] = value

    evaluation_periods = alarm.get("EvaluationPeriods")
    put("AlarmDescription", alarm.get("AlarmDescription"))
    put("ActionsEnabled", bool(alarm.get("ActionsEnabled", True)))
    for key in ("OKActions", "AlarmActions", "InsufficientDataActions"):
        put(key, tuple(alarm.get(key) or ()))
    put("EvaluationPeriods", _int(evaluation_periods))
    put("DatapointsToAlarm", _int(alarm.get("DatapointsToAlarm") or evaluation_periods))
    put("Threshold", _float(alarm.get("Threshold")))
    put("ComparisonOperator", alarm.get("ComparisonOperator"))
    put("TreatMissingData", alarm.get("TreatMissingData") or "missing")
    put("EvaluateLowSampleCountPercentile", alarm.get("EvaluateLowSampleCountPercentile"))
    put("ThresholdMetricId", alarm.get("ThresholdMetricId"))
    put("EvaluationInterval", _evaluation_interval(alarm))
    if alarm.get("EvaluationCriteria"):  # a PromQL alarm: never rollguard's, so always a difference
        put("EvaluationCriteria", json.dumps(alarm["EvaluationCriteria"], sort_keys=True, default=str))
    for key in ("Namespace", "MetricName", "Statistic", "ExtendedStatistic", "Unit"):
        put(key, alarm.get(key))
    put("Period", _int(alarm.get("Period")))
    put("Dimensions", _dims(alarm.get("Dimensions")))
    for query in sorted(alarm.get("Metrics") or (), key=lambda q: str(q.get("Id", ""))):
        prefix = f"Metrics[{query.get('Id', '')}]"
        out[prefix] = "present"  # so an added or removed query shows even when all its fields match
        put(f"{prefix}.Expression", query.get("Expression"))
        put(f"{prefix}.Label", query.get("Label"))
        put(f"{prefix}.ReturnData", bool(query.get("ReturnData", True)))
        put(f"{prefix}.Period", _int(query.get("Period")))
        stat = query.get("MetricStat")
        if stat:
            metric = stat.get("Metric") or {}
            put(f"{prefix}.Namespace", metric.get("Namespace"))
            put(f"{prefix}.MetricName", metric.get("MetricName"))
            put(f"{prefix}.Dimensions", _dims(metric.get("Dimensions")))
            put(f"{prefix}.Period", _int(stat.get("Period")))
            put(f"{prefix}.Stat", stat.get("Stat"))
            put(f"{prefix}.Unit", stat.get("Unit"))
    return out


def _evaluation_interval(alarm: Mapping[str, Any]) -> int | None:
    """EvaluationInterval as DescribeAlarms reports it, else what CloudWatch uses for the alarm's
    period (the metric alarms rollguard puts never set it), so the echo is not a change."""
    given = _int(alarm.get("EvaluationInterval"))
    if given is not None:
        return given
    periods = [_int(alarm.get("Period"))] + [
        _int((q.get("MetricStat") or {}).get("Period")) for q in alarm.get("Metrics") or ()
    ]
    period = next((p for p in periods if p), None)
    n = _int(alarm.get("EvaluationPeriods"))
    return None if period is None or n is None else rules.evaluation_interval(period, n)


def _int(value: object) -> int | None:
    return None if value is None or value == "" else int(value)  # type: ignore[call-overload]


def _float(value: object) -> float | None:
    return None if value is None or value == "" else float(value)  # type: ignore[arg-type]


def _dims(dims: object) -> tuple[str, ...]:
    if not dims:
        return ()
    return tuple(sorted(f"{d['Name']}={d['Value']}" for d in dims))  # type: ignore[attr-defined]


def diff(current: Mapping[str, Any], desired: Mapping[str, Any]) -> tuple[FieldDiff, ...]:
    """The fields where a described alarm differs from a desired request (empty: unchanged)."""
    a, b = comparable(current), comparable(desired)
    return tuple(FieldDiff(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


# ---------------------------------------------------------------------------------------------
# reading CloudWatch


@dataclass(frozen=True, slots=True)
class _Existing:
    alarm: Mapping[str, Any]
    tags: Mapping[str, str]
    composite: bool


def _describe_all(client: AlarmClient, prefix: str) -> Iterator[tuple[Mapping[str, Any], bool]]:
    pages = client.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
    )
    for page in pages:
        for alarm in page.get("MetricAlarms", ()):
            yield alarm, False
        for alarm in page.get("CompositeAlarms", ()):
            yield alarm, True


def _existing(client: AlarmClient) -> dict[str, _Existing]:
    out: dict[str, _Existing] = {}
    for alarm, composite in _describe_all(client, NAME_PREFIX):
        arn = alarm.get("AlarmArn")
        tags: dict[str, str] = {}
        if arn:
            response = client.list_tags_for_resource(ResourceARN=arn)
            tags = {t["Key"]: t["Value"] for t in response.get("Tags", ())}
        out[alarm["AlarmName"]] = _Existing(alarm, tags, composite)
    return out


def owned_by(tags: Mapping[str, str], spec_name: str) -> bool:
    """True when the tags mark an alarm as made by rollguard for the spec ``spec_name``."""
    return tags.get(OWNER_TAG) == OWNER_VALUE and tags.get(SPEC_TAG) == spec_name


def desired_requests(spec: SpecFile, namespace: str) -> dict[str, dict[str, Any]]:
    """The PutMetricAlarm request of every alarm in the spec, by alarm name, in spec order: the
    alarms, then one verdict alarm per comparison."""
    alarms: list[Alarm | VerdictAlarm] = [*expand(spec), *verdict_alarms(spec)]
    return {a.name: to_put_metric_alarm(a, namespace) for a in alarms}


# ---------------------------------------------------------------------------------------------
# plan and apply


def plan(spec: SpecFile, client: AlarmClient, namespace: str) -> list[Change]:
    """What apply would do: one Change per spec alarm, plus a delete per owned alarm that left the spec.

    Read-only: calls DescribeAlarms (name prefix ``rollguard-``) and ListTagsForResource.
    """
    desired = desired_requests(spec, namespace)
    existing = _existing(client)
    changes: list[Change] = []
    for name, request in desired.items():
        found = existing.get(name)
        if found is None:
            changes.append(Change("create", name, request))
        elif found.composite or not owned_by(found.tags, spec.name):
            changes.append(Change("conflict", name, request, detail=_not_owned(found, spec.name)))
        else:
            diffs = diff(found.alarm, request)
            changes.append(Change("update" if diffs else "unchanged", name, request, diffs))
    for name in sorted(set(existing) - set(desired)):
        found = existing[name]
        if not found.composite and owned_by(found.tags, spec.name):
            changes.append(Change("delete", name, detail=f"owned by spec {spec.name}, no longer in it"))
    return changes


def _not_owned(found: _Existing, spec_name: str) -> str:
    if found.composite:
        return "a composite alarm has this name; rename or delete it by hand"
    if found.tags.get(OWNER_TAG) != OWNER_VALUE:
        return f"exists without tag {OWNER_TAG}={OWNER_VALUE}: not rollguard's, left alone; rename or delete it by hand"
    other = found.tags.get(SPEC_TAG, "(none)")
    return f"owned by rollguard spec {other!r}, not {spec_name!r}; one alarm cannot belong to two specs"


def apply(
    spec: SpecFile,
    client: AlarmClient,
    namespace: str,
    changes: Sequence[Change] | None = None,
) -> list[Change]:
    """Make CloudWatch match the spec; returns the changes made (creates, updates, deletes).

    Idempotent: a second call makes no change. Raises SyncError, before changing anything,
    when the plan has conflicts or any request fails :func:`check_put_metric_alarm`. Puts run
    before deletes, so a renamed alarm exists under its new name before the old one goes.
    Raises PartialApplyError, saying what was and was not applied, when a call fails mid-way.
    ``changes`` may pass a plan just shown to a person.
    """
    todo = list(plan(spec, client, namespace) if changes is None else changes)
    conflicts = [c for c in todo if c.action == "conflict"]
    if conflicts:
        lines = "; ".join(f"{c.alarm_name}: {c.detail}" for c in conflicts)
        raise SyncError(f"{len(conflicts)} conflict(s), nothing changed: {lines}", todo)
    puts = [(c, _put_request(c)) for c in todo if c.action in ("create", "update") and c.request is not None]
    refused = [f"{c.alarm_name}: {'; '.join(problems)}" for c, r in puts if (problems := check_put_metric_alarm(r))]
    if refused:
        raise SyncError(f"{len(refused)} alarm(s) CloudWatch would refuse, nothing changed: {'; '.join(refused)}", todo)
    deletes = [c for c in todo if c.action == "delete"]
    pending = [c for c, _ in puts] + deletes
    done: list[Change] = []  # always a prefix of pending, so pending[len(done):] was not applied
    for change, request in puts:
        try:
            client.put_metric_alarm(**request)
        except Exception as exc:  # whatever boto3 raises: say exactly where CloudWatch now stands
            raise PartialApplyError([change], exc, done, pending[len(done) :]) from exc
        done.append(change)
    for i in range(0, len(deletes), _DELETE_BATCH):
        batch = deletes[i : i + _DELETE_BATCH]
        try:
            client.delete_alarms(AlarmNames=[c.alarm_name for c in batch])
        except Exception as exc:  # a failed DeleteAlarms deletes none of its alarms
            raise PartialApplyError(batch, exc, done, pending[len(done) :]) from exc
        done.extend(batch)
    return done


def _put_request(change: Change) -> dict[str, Any]:
    request = dict(change.request or {})
    if change.action == "update":
        # AWS ignores Tags on update anyway; leaving them out keeps moto (which merges them) honest
        request.pop("Tags", None)
    return request
