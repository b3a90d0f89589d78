#!/usr/bin/python3
"""Write the evaluation dataset of the breast-cancer models and the metrics
scikit-learn computes for each model on it.

Run with Debian's interpreter (apt-get install python3-xgboost python3-sklearn):

    /usr/bin/python3 examples/breast-cancer/evaluate.py

Reads holdout.csv and v1/v2/v3.json beside this script and writes:
  holdout-eval.csv  the 143 holdout rows with two more columns:
                    size_band  small/medium/large by mean_area (< 500, < 1000,
                               else): a segment column
                    age_band   under-50/50-plus, drawn at random with a fixed
                               seed: a SYNTHETIC sensitive column (the data
                               has no ages) to show the fairness gaps
  evaluation.json   for each model: XGBoost's own predictions on every row and
                    the metrics scikit-learn computes from them — overall, per
                    segment, and the fairness gaps over age_band. slipway's
                    evaluation tests compare their numbers with these.
"""
import csv
import json
import os

import numpy as np
import sklearn
import xgboost as xgb
from sklearn import metrics

HERE = os.path.dirname(os.path.abspath(__file__))
THRESHOLD = 0.5


def ece(y, p, bins=10):
    # Equal-width bins over the positive-class probability (as in
    # internal/evaluation/testdata/generate.py).
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / len(p) * abs(y[m].mean() - p[m].mean())
    return float(total)


def classification(y, p):
    pred = (p >= THRESHOLD).astype(int)
    out = {
        "accuracy": metrics.accuracy_score(y, pred),
        "precision": metrics.precision_score(y, pred, zero_division=0),
        "recall": metrics.recall_score(y, pred, zero_division=0),
        "f1": metrics.f1_score(y, pred, zero_division=0),
        "log_loss": metrics.log_loss(y, p, eps=1e-15, labels=[0, 1]),
        "brier": metrics.brier_score_loss(y, p),
        "ece": ece(y, p),
    }
    if len(set(y.tolist())) == 2:
        out["roc_auc"] = metrics.roc_auc_score(y, p)
    return {k: float(v) for k, v in out.items()}


def fairness(y, p, groups):
    pred = (p >= THRESHOLD).astype(int)
    tprs, rates = [], []
    for g in sorted(set(groups)):
        m = np.array([x == g for x in groups])
        rates.append(pred[m].mean())
        if y[m].sum() > 0:
            tprs.append(metrics.recall_score(y[m], pred[m]))
    return {"tpr_gap": float(max(tprs) - min(tprs)), "positive_rate_gap": float(max(rates) - min(rates))}


def main():
    with open(os.path.join(HERE, "holdout.csv")) as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    features = header[:-1]
    x = np.array([[float(v) for v in r[:-1]] for r in body])
    y = np.array([int(r[-1]) for r in body])
    area = x[:, features.index("mean_area")]
    size = ["small" if a < 500 else "medium" if a < 1000 else "large" for a in area]
    rng = np.random.default_rng(7)
    age = ["under-50" if u < 0.5 else "50-plus" for u in rng.random(len(body))]

    with open(os.path.join(HERE, "holdout-eval.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header + ["size_band", "age_band"])
        for r, s, a in zip(body, size, age):
            w.writerow(r + [s, a])

    out = {"sklearn": sklearn.__version__, "xgboost": xgb.__version__, "threshold": THRESHOLD, "models": {}}
    for name in ["v1", "v2", "v3"]:
        booster = xgb.Booster()
        booster.load_model(os.path.join(HERE, name + ".json"))
        p = booster.predict(xgb.DMatrix(x, feature_names=features)).astype(np.float64)
        segments = {}
        for g in sorted(set(size)):
            m = np.array([s == g for s in size])
            segments["size_band=" + g] = {"rows": int(m.sum()), "metrics": classification(y[m], p[m])}
        out["models"][name] = {
            "predictions": [float(v) for v in p],
            "metrics": {**classification(y, p), **fairness(y, p, age)},
            "segments": segments,
        }
    with open(os.path.join(HERE, "evaluation.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
