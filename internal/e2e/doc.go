// Package e2e holds slipway's end-to-end tests: they build the real slipway
// binary, start real servers on loopback with their own data folders, and
// drive them with the binary as a CLI subprocess, asserting on exit codes,
// output and what lands on disk. The package has no code of its own; its
// tests import the types of domain, api, audit and registry only to decode
// the CLI's JSON output, never a store or a handler (the tamper test edits
// the SQLite file with database/sql, as an attacker would). `go test
// -short` skips it.
package e2e
