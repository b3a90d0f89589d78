// Package e2e holds slipway's end-to-end tests: they build the real slipway
// binary, start real servers on loopback with their own data folders, and
// drive them with the binary as a CLI subprocess and with real clients of
// the gateway (plain HTTP, the official OpenAI Go SDK), asserting on exit
// codes, output, answers and what lands on disk. Model servers are real
// processes too: the Go XGBoost runtime in process, testdata/oipserver (a
// small Open Inference Protocol server built on first use) as a process
// version, and httptest upstreams that fail on purpose. The package has no
// code of its own; its tests import slipway's types only to decode JSON,
// never a store or a handler (the tamper test edits the SQLite file with
// database/sql, as an attacker would). `go test -short` skips it.
package e2e
