//go:build race

package e2e

// raceEnabled builds the runner under test with the race detector when the
// suite itself runs with -race, so races in a real build are caught too.
const raceEnabled = true
