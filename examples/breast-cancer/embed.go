// Package breastcancer holds the breast-cancer example — three XGBoost
// models trained by train.py, the holdout data and the production gate
// policy — embedded, so that `slipway demo` runs from any folder with
// nothing to download.
package breastcancer

import _ "embed"

// The models: v1 (100 trees), v2 (3 shallow trees: worse, the gate
// rejects it), v3 (400 trees: better).
var (
	//go:embed v1.json
	V1 []byte
	//go:embed v2.json
	V2 []byte
	//go:embed v3.json
	V3 []byte
)

// HoldoutEval is the evaluation dataset (features, label, size_band
// segment, age_band sensitive column); Holdout the plain holdout rows
// (features and label).
var (
	//go:embed holdout-eval.csv
	HoldoutEval []byte
	//go:embed holdout.csv
	Holdout []byte
)

// PolicyProduction is the production gate policy.
//
//go:embed policy-production.yaml
var PolicyProduction []byte
