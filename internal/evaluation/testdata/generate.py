"""Reference values for internal/evaluation, computed with scikit-learn.

Run with Debian's interpreter: /usr/bin/python3 generate.py > cases.json
(apt-get install -y python3-sklearn). Tests read the committed cases.json
and need no Python.
"""
import json

import numpy as np
from sklearn import metrics


def ece(y, p, bins=10):
    # Equal-width bins over the positive-class probability; a probability
    # of exactly 1 falls in the last bin. ECE = sum_b n_b/N |mean(y) - mean(p)|.
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / len(p) * abs(y[m].mean() - p[m].mean())
    return float(total)


def classification(name, y, p, threshold=0.5):
    pred = (p >= threshold).astype(int)
    return {
        "name": name, "kind": "classification", "threshold": threshold,
        "labels": y.tolist(), "scores": p.tolist(),
        "want": {
            "accuracy": metrics.accuracy_score(y, pred),
            "precision": metrics.precision_score(y, pred, zero_division=0),
            "recall": metrics.recall_score(y, pred, zero_division=0),
            "f1": metrics.f1_score(y, pred, zero_division=0),
            "roc_auc": metrics.roc_auc_score(y, p),
            "log_loss": metrics.log_loss(y, p, eps=1e-15, labels=[0, 1]),
            "brier": metrics.brier_score_loss(y, p),
            "ece": ece(y, p),
        },
    }


def regression(name, y, p):
    return {
        "name": name, "kind": "regression", "labels": y.tolist(), "scores": p.tolist(),
        "want": {
            "mae": metrics.mean_absolute_error(y, p),
            "rmse": float(np.sqrt(metrics.mean_squared_error(y, p))),
            "r2": metrics.r2_score(y, p),
        },
    }


def fairness(name, y, p, groups, threshold=0.5):
    pred = (p >= threshold).astype(int)
    tpr, pos = {}, {}
    for g in sorted(set(groups)):
        m = np.array([x == g for x in groups])
        pos[g] = float(pred[m].mean())
        positives = m & (y == 1)
        tpr[g] = float(metrics.recall_score(y[m], pred[m], zero_division=0)) if positives.any() else None
    tprs = [v for v in tpr.values() if v is not None]
    return {
        "name": name, "kind": "fairness", "threshold": threshold,
        "labels": y.tolist(), "scores": p.tolist(), "groups": groups,
        "want": {"tpr_gap": max(tprs) - min(tprs), "positive_rate_gap": max(pos.values()) - min(pos.values())},
    }


rng = np.random.default_rng(7)
cases = []
y = rng.integers(0, 2, 500)
p = np.clip(y * 0.35 + rng.random(500) * 0.65, 0, 1)
cases.append(classification("separable-ish", y, p))
# Coarse scores: many ties, which ROC-AUC must average.
cases.append(classification("ties", y, np.round(p, 1)))
cases.append(classification("threshold 0.3", y, p, 0.3))
# Extreme probabilities exercise log-loss clipping.
q = p.copy()
q[:5] = 0.0
q[5:10] = 1.0
cases.append(classification("extremes", y, q))
# Nothing predicted positive: precision and F1 are 0 (zero_division=0).
cases.append(classification("no positive predictions", y, p * 0.4))
yr = rng.normal(10, 3, 300)
cases.append(regression("regression", yr, yr + rng.normal(0, 1, 300)))
cases.append(regression("regression biased", yr, yr * 0.8 + 3))
groups = [["a", "b", "c"][i % 3] for i in range(500)]
pf = p.copy()
pf[[i for i in range(500) if i % 3 == 2]] *= 0.7
cases.append(fairness("fairness", y, pf, groups))
print(json.dumps({"sklearn": __import__("sklearn").__version__, "cases": cases}))
