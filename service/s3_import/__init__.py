"""`rollguard import-s3`'s machinery: produce SageMaker Data Capture files from S3 to the captures topic.

Data Capture writes `{prefix}/{endpoint}/{variant}/yyyy/mm/dd/hh/{name}.jsonl`, one JSON object a
line. Every object under the prefix that was not imported before (same key and ETag) is read once;
each non-blank line goes to the captures topic byte for byte, keyed by its inference id
(`eventMetadata.inferenceId`, else `eventId`), with Kafka headers `endpoint` and `variant` taken from
the key, which is where `pipelines.parse.parse_capture` looks for them. Lines that are not JSON are
produced too (unkeyed), so the daemon dead-letters them with a reason instead of them vanishing here.

What was imported is kept in a small ledger in the checkpoint store (ROLLGUARD_STATE_DIR), saved only
after the producer acknowledged every line of a file: a crash, or a failure in the middle of a file,
re-imports at most that one file.

The pure part (:mod:`.layout`: prefix and key parsing; :mod:`.records`: line -> record;
:mod:`.ledger`: ledger diffing) is separate from the I/O edges (:mod:`.edges`: S3 listing and
reading, Kafka producing), which sit behind small Protocols; :mod:`.importer` runs one pass, and
the command is service/commands/import_s3.py.
"""
