package plan

import "strings"

// ignoreCommon leaves out of every build context what never belongs in an
// image: version control, logs, OS and editor litter. (Committed .env
// files stay: frameworks such as Next read .env.production at build time.)
var ignoreCommon = []string{".git", ".hg", ".svn", "*.log", ".DS_Store", ".idea", ".vscode", "Dockerfile", ".dockerignore"}

// ignoreByTemplate adds each stack's dependency and build directories: the
// build makes them afresh, and a copy from the repository would be stale or
// for another platform.
var ignoreByTemplate = map[string][]string{
	"node":   {"node_modules", ".next", ".nuxt", ".output", ".svelte-kit", ".turbo", ".vercel", ".cache", "coverage", "npm-debug.log*", "yarn-error.log"},
	"static": {"node_modules", ".cache", ".astro", "coverage", "dist", "build"},
	"python": {"__pycache__", "*.pyc", ".venv", "venv", ".pytest_cache", ".mypy_cache", ".tox", "*.egg-info"},
	"go":     {"bin"},
	"rust":   {"target"},
	"ruby":   {".bundle", "vendor/bundle", "log/*", "tmp/*", "node_modules", "public/assets", "storage/*"},
}

// dockerignore is the default .dockerignore for a repository without one.
func (b *tbuild) dockerignore() string {
	lines := append(append([]string{}, ignoreCommon...), ignoreByTemplate[b.rec.Template]...)
	// The Next build's own output is made in the image; its cache lives in a cache mount.
	return strings.Join(lines, "\n") + "\n"
}
