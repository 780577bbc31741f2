package webhook

import (
	"fmt"
	"path"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// ValidateWatchPaths checks patterns before they are stored, so a typo is
// reported when a service is configured rather than silently never matching.
//
// A list made only of ! patterns is refused too: negations only take back
// what an earlier pattern matched, so such a list matches nothing and the
// service would never build. (GitHub Actions refuses paths filters of
// only negations for the same reason.) An empty list is fine: it means
// no filter.
func ValidateWatchPaths(patterns []string) error {
	positive := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		pat := strings.TrimPrefix(p, "!")
		if strings.TrimSpace(pat) == "" || !doublestar.ValidatePattern(cleanPattern(pat)) {
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

// Touches decides whether a push concerns a service, from its watch paths
// or, when it has none, its root directory. With neither, every push does.
// It returns a reason for logs when the answer is no.
//
// Watch paths are globs relative to the repository root, with ** for any
// number of directories. As in .gitignore, a pattern starting with ! takes
// paths back out, and the last pattern that matches a path decides. A
// pattern without glob characters also covers everything below it, so
// "docs" means the directory as well as a file of that name.
//
// When GitHub did not list every changed file the answer is yes: building
// once too often is cheaper than missing a deploy.
func Touches(p Push, rootDirectory string, watchPaths []string) (bool, string) {
	root := path.Clean(normalizePath(rootDirectory))
	if len(watchPaths) == 0 && (root == "." || root == "") {
		return true, ""
	}
	if !p.ChangesKnown {
		return true, ""
	}
	for _, f := range p.Changed {
		f = normalizePath(f)
		if len(watchPaths) > 0 {
			if watched(f, watchPaths) {
				return true, ""
			}
		} else if f == root || strings.HasPrefix(f, root+"/") {
			return true, ""
		}
	}
	if len(watchPaths) > 0 {
		return false, fmt.Sprintf("none of %d changed files matches the watch paths %v", len(p.Changed), watchPaths)
	}
	return false, fmt.Sprintf("none of %d changed files is under the root directory %s", len(p.Changed), root)
}

func watched(file string, patterns []string) bool {
	in := false
	for _, raw := range patterns {
		neg := strings.HasPrefix(raw, "!")
		pat := cleanPattern(strings.TrimPrefix(raw, "!"))
		if matches(pat, file) {
			in = !neg
		}
	}
	return in
}

func matches(pat, file string) bool {
	if doublestar.MatchUnvalidated(pat, file) {
		return true
	}
	// "dir" and "dir/" cover what is below the directory, and so does a
	// pattern naming directories: "packages/*" covers packages/ui/x.ts.
	return doublestar.MatchUnvalidated(strings.TrimSuffix(pat, "/")+"/**", file)
}

func cleanPattern(p string) string {
	return normalizePath(strings.TrimSpace(p))
}

// normalizePath reads a path as relative to the repository root.
func normalizePath(p string) string {
	return strings.TrimPrefix(strings.TrimPrefix(p, "./"), "/")
}
