//go:build race

package steering

// raceEnabled: the race detector pads allocations, so heap sizes are not
// the product's.
const raceEnabled = true
