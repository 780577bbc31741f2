//go:build !race

package detect

const timeScale = 1
