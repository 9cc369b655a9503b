"""Comparisons: a candidate model judged against a baseline (SPEC.md "Comparisons and verdicts").

``config.py`` defines a comparison, ``counter.py`` counts its evidence as the join runs,
``tally.py`` holds those counts (they add up across partitions and instances) and
``report.py`` renders a verdict. The statistics are in ``pipelines.verdict``.
"""
