//go:build !race

package snp

const raceDetector = false
