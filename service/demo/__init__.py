"""`rollguard demo`: the reference story (SPEC.md) played on the real local stack.

One idea per module: `behaviour` (how each model version behaves), `traffic` (the time-driven
generator and its producer), `scenario` (what is played: timings, tolerances, the alarm spec),
`stack` (Kafka, moto, `alarms apply`, the daemon), `observe` (what rollguard reports), `cloudwatch`
(CloudWatch's alarm evaluation, which the local AWS API lacks), `driver` (SageMaker's linear
shift), `view` (live terminal view or plain lines), `charts` (PNG), `story` (the phases).
"""
