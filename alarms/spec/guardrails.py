"""Which alarms a guardrail deploy of one endpoint lists in its AutoRollbackConfiguration."""
from __future__ import annotations

from alarms.spec.expand import expand
from alarms.spec.schema import SpecFile
from alarms.spec.verdicts import verdict_alarms

#: SageMaker's limit on the alarms of one AutoRollbackConfiguration
MAX_GUARDRAIL_ALARMS = 10


def guardrail_alarm_names(spec: SpecFile, endpoint: str) -> list[str]:
    """Names of the alarms of ``endpoint`` marked for the guardrail (``guardrail: true``), in spec
    order, then the verdict alarms of its comparisons marked so."""
    return [*guardrail_alarms(spec, endpoint), *guardrail_verdicts(spec, endpoint)]


def guardrail_alarms(spec: SpecFile, endpoint: str) -> list[str]:
    """The spec alarms (not verdicts) of :func:`guardrail_alarm_names`."""
    return [a.name for a in expand(spec) if a.endpoint == endpoint and a.guardrail]


def guardrail_verdicts(spec: SpecFile, endpoint: str) -> list[str]:
    """The verdict alarms of :func:`guardrail_alarm_names`."""
    return [v.name for v in verdict_alarms(spec) if v.endpoint == endpoint and v.guardrail]
