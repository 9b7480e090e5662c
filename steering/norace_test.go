//go:build !race

package steering

const raceEnabled = false
