//go:build !race

package tdx

const raceDetector = false
