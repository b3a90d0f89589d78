# Writes the tiny regression fixture of TestRegressionGatesEndToEnd with
# Debian's python3-sklearn and python3-xgboost: two XGBoost regressors on
# three features of scikit-learn's diabetes data, a 24-row JSON Lines
# holdout, and the metrics scikit-learn computes from XGBoost's own
# predictions (printed, copied into the test).
import json
import xgboost as xgb
from sklearn.datasets import load_diabetes
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

d = load_diabetes(as_frame=True)
cols = ["bmi", "bp", "s5"]
X, y = d.data[cols].values, d.target.values
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=24, random_state=7)
Xte = Xte.round(6)  # as written to holdout.jsonl
for name, trees, depth in [("v1", 4, 2), ("v2", 1, 1)]:
    m = xgb.XGBRegressor(n_estimators=trees, max_depth=depth, learning_rate=0.5, objective="reg:squarederror")
    m.fit(Xtr, ytr)
    b = m.get_booster()
    b.feature_names = cols
    b.save_model(name + ".json")
    p = b.predict(xgb.DMatrix(Xte, feature_names=cols))
    print(name, repr(r2_score(yte, p)), repr(mean_absolute_error(yte, p)), repr(mean_squared_error(yte, p) ** 0.5))
with open("holdout.jsonl", "w") as f:
    for x, t in zip(Xte, yte):
        f.write(json.dumps({**{c: float(v) for c, v in zip(cols, x)}, "progression": float(t)}) + "\n")
