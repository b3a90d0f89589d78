// Package layout holds no code, only the test that keeps slipway's package
// map true: each internal package imports only packages listed above it in
// DESIGN.md, and the pure packages never reach for the network, a database
// or a concrete store.
package layout
