#!/usr/bin/python3
"""Train the breast-cancer example models and write the parity data.

Run with Debian's interpreter (apt-get install python3-xgboost python3-sklearn):

    /usr/bin/python3 examples/breast-cancer/train.py

Writes, beside this script:
  v1.json, v2.json, v3.json  XGBoost models saved with Booster.save_model (JSON)
  holdout.csv                the held-out rows: 30 features (lower_snake_case) and label
  parity.json                input rows and XGBoost's own predictions for every model,
                             which internal/runtime/xgboost tests its evaluator against

Everything is deterministic: sklearn's bundled dataset (no download), a fixed
stratified split, fixed seeds, and a single thread.
"""
import csv
import json
import os
import re

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))

# v2 sees only these three (weak) features; the other 27 columns are held at 0
# during training, so no tree can split on them, yet the model still has
# num_feature = 30 and takes the same 30-column rows as v1 and v3.
V2_FEATURES = ["mean_texture", "mean_smoothness", "mean_symmetry"]

MODELS = {
    "v1": (dict(objective="binary:logistic", max_depth=4, eta=0.3), 100),
    "v2": (dict(objective="binary:logistic", max_depth=1, eta=0.3), 5),
    "v3": (dict(objective="binary:logistic", max_depth=4, eta=0.05, subsample=0.8,
                colsample_bytree=0.8), 400),
}


def snake(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def jsonable(rows):
    """Rows as lists of floats, NaN (missing) written as null."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in rows]


def edge_rows(booster, base, count, rng):
    """Rows that sit on split thresholds, where float32 matters.

    For a split "x < t" (t is a float32), x = t goes right; x slightly below t
    in float64 but rounding to t in float32 must go right too, as XGBoost
    compares in float32. A float64 evaluator would send it left.
    """
    model = json.loads(booster.save_raw("json"))
    trees = model["learner"]["gradient_booster"]["model"]["trees"]
    splits = []
    for tree in trees:
        for i, left in enumerate(tree["left_children"]):
            if left != -1:
                splits.append((tree["split_indices"][i], tree["split_conditions"][i]))
    rows = []
    for k in rng.choice(len(splits), size=min(count, len(splits)), replace=False):
        feature, threshold = splits[k]
        t = float(np.float32(threshold))
        ulp = float(np.spacing(np.float32(t)))
        for value in (t, t - ulp / 4, t - ulp):
            row = base[rng.integers(len(base))].copy()
            row[feature] = value
            rows.append(row)
    return np.array(rows)


def with_missing(rows, fraction, rng):
    out = rows.copy()
    out[rng.random(out.shape) < fraction] = np.nan
    return out


def main():
    data = load_breast_cancer()
    names = [snake(n) for n in data.feature_names]
    # sklearn codes 0 = malignant, 1 = benign; flip it so the models score
    # the probability of malignancy (label 1 = malignant).
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, 1 - data.target, test_size=0.25, random_state=42, stratify=1 - data.target)

    keep = [names.index(n) for n in V2_FEATURES]
    X_train_v2 = np.zeros_like(X_train)
    X_train_v2[:, keep] = X_train[:, keep]

    with open(os.path.join(HERE, "holdout.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names + ["label"])
        for row, label in zip(X_test, y_test):
            w.writerow([repr(float(v)) for v in row] + [int(label)])

    rng = np.random.default_rng(42)
    cases = []
    print(f"xgboost {xgb.__version__}; train {len(y_train)} rows, holdout {len(y_test)} rows")
    print(f"{'model':6} {'accuracy':>9} {'auc':>7}  trees")
    for version, (params, rounds) in MODELS.items():
        train_rows = X_train_v2 if version == "v2" else X_train
        dtrain = xgb.DMatrix(train_rows, label=y_train, feature_names=names)
        booster = xgb.train(dict(params, seed=0, nthread=1), dtrain, rounds)
        booster.save_model(os.path.join(HERE, f"{version}.json"))

        p = booster.predict(xgb.DMatrix(X_test, feature_names=names))
        acc = accuracy_score(y_test, p >= 0.5)
        auc = roc_auc_score(y_test, p)
        print(f"{version:6} {acc:9.4f} {auc:7.4f}  {rounds}")

        rows = np.vstack([
            X_test,
            with_missing(X_test[:40], 0.25, rng),
            np.full((1, X_test.shape[1]), np.nan),
            edge_rows(booster, X_test, 20, rng),
        ])
        pred = booster.predict(xgb.DMatrix(rows, missing=np.nan, feature_names=names))
        cases.append({
            "model": f"{version}.json",
            "objective": params["objective"],
            "num_outputs": 1,
            "holdout_accuracy": round(float(acc), 4),
            "holdout_auc": round(float(auc), 4),
            "rows": jsonable(rows),
            "predictions": [[float(v)] for v in pred],
        })

    with open(os.path.join(HERE, "parity.json"), "w") as f:
        json.dump({"xgboost_version": xgb.__version__, "feature_names": names,
                   "cases": cases}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
