package subscriptions

import (
	"fmt"
	"path"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/alternatefutures/af-builder/shared/validate"
)

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
// complete says whether changed lists every file that differs from the
// branch's previous head. When it does not, the answer is yes: building
// once too often is cheaper than missing a deploy.
func Touches(changed []string, complete bool, rootDirectory string, watchPaths []string) (bool, string) {
	root := path.Clean(validate.NormalizePath(rootDirectory))
	if len(watchPaths) == 0 && (root == "." || root == "") {
		return true, ""
	}
	if !complete {
		return true, ""
	}
	for _, f := range changed {
		f = validate.NormalizePath(f)
		if len(watchPaths) > 0 {
			if watched(f, watchPaths) {
				return true, ""
			}
		} else if f == root || strings.HasPrefix(f, root+"/") {
			return true, ""
		}
	}
	if len(watchPaths) > 0 {
		return false, fmt.Sprintf("none of %d changed files matches the watch paths %v", len(changed), watchPaths)
	}
	return false, fmt.Sprintf("none of %d changed files is under the root directory %s", len(changed), root)
}

func watched(file string, patterns []string) bool {
	in := false
	for _, raw := range patterns {
		neg := strings.HasPrefix(raw, "!")
		pat := validate.CleanPattern(strings.TrimPrefix(raw, "!"))
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
