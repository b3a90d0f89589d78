#!/usr/bin/python3
"""Generate the parity and refusal models the Go evaluator is tested on.

Run with Debian's interpreter (apt-get install python3-xgboost python3-pandas):

    /usr/bin/python3 internal/runtime/xgboost/testdata/generate.py

Small synthetic datasets from numpy with fixed seeds, one model per objective
and tree-building path the evaluator supports, saved with
Booster.save_model (JSON), and parity.json: input rows (null = missing) and
XGBoost's own predictions for them. The refusal models (gblinear, dart,
categorical splits) get no predictions: the evaluator must reject them.
"""
import json
import os

import numpy as np
import pandas as pd
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
N_FEATURES = 8


def features(rng, n, missing=0.0):
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 3] = np.round(X[:, 3] * 2) / 2  # a coarse column: many ties at thresholds
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    return X


def signal(X):
    Z = np.nan_to_num(X, nan=0.0)
    return 1.5 * Z[:, 0] - Z[:, 1] ** 2 + np.sin(2 * Z[:, 2]) + 0.5 * Z[:, 3] * Z[:, 4]


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def classes(X, rng):
    s = signal(X) + rng.normal(scale=0.5, size=len(X))
    return np.digitize(s, np.quantile(s, [1 / 3, 2 / 3])).astype(float)


def binary(X, rng):
    y = (signal(X) + rng.normal(scale=0.5, size=len(X)) > 0).astype(float)
    # Missingness that carries signal, so the learned default directions matter.
    y[np.isnan(X[:, 0])] = 1.0
    return y


def jsonable(rows):
    return [[None if np.isnan(v) else float(v) for v in row] for row in rows]


def edge_rows(booster, base, count, rng):
    """Rows on split thresholds: XGBoost compares in float32 (see train.py)."""
    model = json.loads(booster.save_raw("json"))
    trees = model["learner"]["gradient_booster"]["model"]["trees"]
    splits = [(t["split_indices"][i], t["split_conditions"][i])
              for t in trees for i, left in enumerate(t["left_children"]) if left != -1]
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


# name: (params, rounds, label function, fraction of training values missing)
PARITY = {
    "reg_squarederror": (dict(objective="reg:squarederror", max_depth=4), 30,
                         lambda X, rng: signal(X) + rng.normal(scale=0.3, size=len(X)), 0.0),
    "reg_base_score": (dict(objective="reg:squarederror", max_depth=3, base_score=12.5), 20,
                       lambda X, rng: 12 + signal(X), 0.0),
    "reg_logistic": (dict(objective="reg:logistic", max_depth=3), 25,
                     lambda X, rng: sigmoid(signal(X)), 0.0),
    "binary_logitraw": (dict(objective="binary:logitraw", max_depth=3, base_score=0.3), 25,
                        binary, 0.0),
    "binary_base_score": (dict(objective="binary:logistic", max_depth=3, base_score=0.2), 25,
                          binary, 0.0),
    "multi_softprob": (dict(objective="multi:softprob", num_class=3, max_depth=3), 15,
                       classes, 0.0),
    "multi_softmax": (dict(objective="multi:softmax", num_class=3, max_depth=3), 15,
                      classes, 0.0),
    "binary_missing": (dict(objective="binary:logistic", max_depth=4), 30, binary, 0.3),
    "binary_hist_lossguide": (dict(objective="binary:logistic", tree_method="hist",
                                   grow_policy="lossguide", max_depth=0, max_leaves=12), 20,
                              binary, 0.2),
    "reg_forest": (dict(objective="reg:squarederror", num_parallel_tree=4, subsample=0.8,
                        colsample_bynode=0.7, max_depth=4), 3,
                   lambda X, rng: signal(X), 0.1),
}


def refusal_models(rng):
    X = features(rng, 300)
    y = binary(X, rng)
    dtrain = xgb.DMatrix(X, label=y)
    xgb.train(dict(booster="gblinear", objective="binary:logistic", nthread=1, seed=0),
              dtrain, 5).save_model(os.path.join(HERE, "gblinear.json"))
    xgb.train(dict(booster="dart", objective="binary:logistic", max_depth=2, rate_drop=0.1,
                   nthread=1, seed=0), dtrain, 3).save_model(os.path.join(HERE, "dart.json"))
    frame = pd.DataFrame(X[:, :4], columns=["a", "b", "c", "d"])
    frame["colour"] = pd.Categorical(rng.integers(0, 5, len(X)))
    y_cat = y + (frame["colour"].cat.codes.values % 2)
    dcat = xgb.DMatrix(frame, label=y_cat, enable_categorical=True)
    xgb.train(dict(tree_method="hist", max_depth=2, max_cat_to_onehot=1, nthread=1, seed=0),
              dcat, 2).save_model(os.path.join(HERE, "categorical.json"))


def main():
    rng = np.random.default_rng(7)
    cases = []
    for name, (params, rounds, label, missing) in PARITY.items():
        X = features(rng, 400, missing)
        booster = xgb.train(dict(params, nthread=1, seed=0), xgb.DMatrix(X, label=label(X, rng)),
                            rounds)
        booster.save_model(os.path.join(HERE, f"{name}.json"))
        test = features(rng, 60)
        rows = np.vstack([test, features(rng, 20, 0.3), edge_rows(booster, test, 10, rng)])
        pred = booster.predict(xgb.DMatrix(rows, missing=np.nan))
        pred = pred.reshape(len(rows), -1)
        cases.append({"model": f"{name}.json", "objective": params["objective"],
                      "num_outputs": pred.shape[1], "rows": jsonable(rows),
                      "predictions": [[float(v) for v in p] for p in pred]})
        print(f"{name:24} {params['objective']:18} outputs={pred.shape[1]}")
    with open(os.path.join(HERE, "parity.json"), "w") as f:
        json.dump({"xgboost_version": xgb.__version__, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    refusal_models(rng)


if __name__ == "__main__":
    main()
