package validate

import (
	"fmt"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// WatchPaths checks patterns before they are stored, so a typo is
// reported when a service is configured rather than silently never matching.
//
// A list made only of ! patterns is refused too: negations only take back
// what an earlier pattern matched, so such a list matches nothing and the
// service would never build. (GitHub Actions refuses paths filters of
// only negations for the same reason.) An empty list is fine: it means
// no filter.
func WatchPaths(patterns []string) error {
	positive := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		pat := strings.TrimPrefix(p, "!")
		if strings.TrimSpace(pat) == "" || !doublestar.ValidatePattern(CleanPattern(pat)) {
			return fmt.Errorf("watch path %q is not a valid glob", p)
		}
		positive = positive || !neg
	}
	if len(patterns) > 0 && !positive {
		return fmt.Errorf("watch paths %q need at least one positive pattern: ! patterns only take back paths "+
			"an earlier pattern matched, so these match nothing and the service would never build "+
			"(to watch everything but them, start with \"**\")", patterns)
	}
	return nil
}

// CleanPattern is a watch path pattern as it is matched: trimmed and
// relative to the repository root.
func CleanPattern(p string) string {
	return NormalizePath(strings.TrimSpace(p))
}

// NormalizePath reads a path as relative to the repository root.
func NormalizePath(p string) string {
	return strings.TrimPrefix(strings.TrimPrefix(p, "./"), "/")
}
