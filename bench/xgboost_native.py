#!/usr/bin/python3
"""Time XGBoost's own C++ predictor on the rows BenchmarkPredict uses.

One thread (nthread=1), Booster.inplace_predict on float64 numpy rows (no
DMatrix), a batch of 1,000 rows and one row at a time; each figure is the
best of several repetitions. Prints "<model> <batch=1000|row> <rows/s>"
lines for bench/xgboost.sh.

Usage: /usr/bin/python3 bench/xgboost_native.py
(Not named xgboost.py: a script of that name would shadow the xgboost module.)
"""
import csv
import os
import time

import numpy as np
import xgboost as xgb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "breast-cancer")
BATCH = 1000
REPEATS = 7


def holdout_rows(n):
    with open(os.path.join(EXAMPLE, "holdout.csv")) as f:
        table = [[float(v) for v in rec[:-1]] for rec in list(csv.reader(f))[1:]]
    return np.array([table[i % len(table)] for i in range(n)], dtype=np.float64)


def best_rate(fn, rows_per_call, calls):
    best = 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        best = max(best, rows_per_call * calls / elapsed)
    return best


def main():
    X = holdout_rows(BATCH)
    singles = [np.ascontiguousarray(X[i:i + 1]) for i in range(BATCH)]
    for version in ("v1", "v3"):
        booster = xgb.Booster()
        booster.load_model(os.path.join(EXAMPLE, f"{version}.json"))
        booster.set_param({"nthread": 1})
        batch = lambda: booster.inplace_predict(X, missing=np.nan)
        batch()  # warm up

        it = iter(range(1 << 62))
        row = lambda: booster.inplace_predict(singles[next(it) % BATCH], missing=np.nan)
        row()
        calls = 20 if version == "v1" else 5
        print(f"{version} batch={BATCH} {best_rate(batch, BATCH, calls):.0f}")
        print(f"{version} row {best_rate(row, 1, 2000):.0f}")
    print(f"# xgboost {xgb.__version__}")


if __name__ == "__main__":
    main()
