//go:build race

package host_test

// raceEnabled: the race detector adds allocations (and sync.Pool drops items on purpose).
const raceEnabled = true
