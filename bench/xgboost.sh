#!/usr/bin/env bash
# xgboost.sh compares slipway's Go XGBoost evaluator with XGBoost's own C++
# predictor on the breast-cancer example models (v1: 100 trees, v3: 400),
# for a batch of 1,000 rows and for one row at a time, both on one thread:
# BenchmarkPredict (best of 3 runs) against Booster.inplace_predict with
# nthread=1 (bench/xgboost_native.py, best of 7). XGBoost's single-row figure
# includes the Python call, which is what serving through Python costs.
#
# Needs Debian's python3-xgboost: apt-get install -y python3-xgboost
# Usage: bench/xgboost.sh   (from anywhere inside the repository)
set -euo pipefail

cd "$(dirname "$0")/.."
python=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

echo "running BenchmarkPredict (3 runs)" >&2
go_out=$(go test -run '^$' -bench '^BenchmarkPredict$' -benchtime 2s -count 3 ./internal/runtime/xgboost)
echo "$go_out" >&2
echo "running bench/xgboost_native.py" >&2
py_out=$("$python" bench/xgboost_native.py)
echo "$py_out" >&2

# Go lines: BenchmarkPredict/v1/batch=1000-2  N  ns/op  R rows/s ...
# Python lines: v1 batch=1000 R
{
	echo "$go_out" | awk '/^BenchmarkPredict\// {
		split($1, p, "/"); sub(/-[0-9]+$/, "", p[3])
		for (i = 2; i < NF; i++) if ($(i+1) == "rows/s") print "go", p[2], p[3], $i
	}'
	echo "$py_out" | awk '!/^#/ { print "xgb", $1, $2, $3 }'
} | awk '
	{ key = $2 " " $3; if ($4 > best[$1, key]) best[$1, key] = $4; keys[key] = 1 }
	END {
		for (key in keys) {
			split(key, k, " ")
			g = best["go", key]; x = best["xgb", key]
			printf "%-5s %-10s %14.0f %14.0f %7.1fx\n", k[1], k[2], g, x, (x > 0 ? g / x : 0)
		}
	}' | sort >"$tmp"
version=$(echo "$py_out" | awk '/^# xgboost/ { print $3 }')
printf "%-5s %-10s %14s %14s %8s\n" model case "go rows/s" "xgboost rows/s" "go/xgb"
cat "$tmp"
echo "(XGBoost $version, one thread each; best of repeated runs)"
