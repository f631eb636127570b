//go:build race

package serve

// raceEnabled says the test binary runs under the race detector, which
// multiplies memory use.
const raceEnabled = true
