//go:build !race

package nitro

const raceDetector = false
