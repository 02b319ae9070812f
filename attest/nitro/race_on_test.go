//go:build race

package nitro

// raceDetector: the race detector slows the single-threaded byte-flip sweeps ~10x without
// adding anything to them, so under -race they sample as under -short.
const raceDetector = true
