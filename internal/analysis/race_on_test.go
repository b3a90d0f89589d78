//go:build race

package analysis

// raceDetector: the race detector slows the single-goroutine simulations
// tenfold without finding anything in them, so they run smaller.
const raceDetector = true
