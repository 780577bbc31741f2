//go:build race

package detect

// The race detector slows regexp-heavy code several times over.
const timeScale = 5
