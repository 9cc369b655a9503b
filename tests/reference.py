"""An independent batch computation of what rollguard should publish: a pandas join of the
same messages the test sent, written without any rollguard code."""
from __future__ import annotations

from typing import Any

import pandas as pd

COUNT_METRICS = [
    "Invocations", "Errors", "TruePositives", "FalsePositives", "FalseNegatives", "TrueNegatives",
    "Labeled", "ShadowAgreements", "ShadowComparisons",
]


def batch_counts(captures: list[dict[str, Any]], labels: list[dict[str, Any]], threshold: float = 0.5) -> pd.DataFrame:
    """Cumulative counts per (endpoint, variant): a batch join of final labels on inference id.

    captures: rollguard-format dicts in stream order; labels: dicts with inference_id, label,
    timestamp (epoch ms), optional endpoint, in stream order.
    """
    cap = pd.DataFrame(captures)
    for col, default in (("status", None), ("error", None), ("prediction", None), ("score", None), ("shadow", False)):
        if col not in cap:
            cap[col] = default
    cap = cap.drop_duplicates(subset=["endpoint", "inference_id", "variant"], keep="first")
    status = pd.to_numeric(cap["status"], errors="coerce")
    cap["is_error"] = (status >= 400).fillna(False) | cap["error"].notna()
    pred = pd.to_numeric(cap["prediction"].astype("object"), errors="coerce")
    from_score = (pd.to_numeric(cap["score"], errors="coerce") >= threshold).astype(float)
    from_score[cap["score"].isna()] = float("nan")
    cap["pred"] = pred.fillna(from_score)
    cap["shadow"] = cap["shadow"].fillna(False).astype(bool)

    out = cap.groupby(["endpoint", "variant"]).agg(Invocations=("inference_id", "size"), Errors=("is_error", "sum"))

    lab = pd.DataFrame(labels) if labels else pd.DataFrame(columns=["inference_id", "label", "timestamp"])
    if "endpoint" not in lab:
        lab["endpoint"] = None
    lab["seq"] = range(len(lab))
    final = lab.sort_values(["timestamp", "seq"]).groupby(["inference_id"], as_index=False).last()
    joined = cap[cap["pred"].notna()].merge(final[["inference_id", "label", "endpoint"]], on="inference_id", suffixes=("", "_label"))
    joined = joined[joined["endpoint_label"].isna() | (joined["endpoint_label"] == joined["endpoint"])]
    y, p = joined["label"].astype(int), joined["pred"].astype(int)
    joined = joined.assign(
        TruePositives=(p == 1) & (y == 1), FalsePositives=(p == 1) & (y == 0),
        FalseNegatives=(p == 0) & (y == 1), TrueNegatives=(p == 0) & (y == 0), Labeled=True,
    )
    outcomes = joined.groupby(["endpoint", "variant"])[["TruePositives", "FalsePositives", "FalseNegatives", "TrueNegatives", "Labeled"]].sum()

    scored = cap[cap["pred"].notna()]
    prod = scored[~scored["shadow"]].drop_duplicates(subset=["endpoint", "inference_id"], keep="first")
    shadow = scored[scored["shadow"]]
    pairs = shadow.merge(prod[["endpoint", "inference_id", "pred"]], on=["endpoint", "inference_id"], suffixes=("", "_prod"))
    pairs = pairs.assign(ShadowAgreements=pairs["pred"] == pairs["pred_prod"], ShadowComparisons=True)
    shadows = pairs.groupby(["endpoint", "variant"])[["ShadowAgreements", "ShadowComparisons"]].sum()

    result = out.join(outcomes, how="outer").join(shadows, how="outer").fillna(0).astype(int)
    for col in COUNT_METRICS:
        if col not in result:
            result[col] = 0
    return result[COUNT_METRICS]


def as_dict(frame: pd.DataFrame) -> dict[tuple[str, str, str], int]:
    """{(endpoint, variant, metric): count} without zero entries, for easy comparison."""
    out: dict[tuple[str, str, str], int] = {}
    for (endpoint, variant), row in frame.iterrows():
        for metric, value in row.items():
            if value:
                out[(str(endpoint), str(variant), str(metric))] = int(value)
    return out
