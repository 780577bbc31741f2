// Package cache names a build's registry layer cache: the references a build
// imports before it starts and the one it exports after it succeeds.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// DefaultTag is the cache tag next to the image when CACHE_REF is unset, the
// convention of the platform's own builder (`<image>:buildcache`).
const DefaultTag = "buildcache"

// Refs are one build's cache references.
type Refs struct {
	// Import is tried in order: the branch's own cache first, then the
	// default branch's, so a new branch's first build starts warm.
	Import []string
	// Export is the branch's own cache; never the default branch's, so a
	// branch cannot overwrite what every other branch starts from.
	Export string
	// MountsImport and MountsExport name the image that carries the
	// build's cache mounts from builder to builder, in the same order and
	// by the same rule: the cache tag plus MountsSuffix.
	MountsImport []string
	MountsExport string
}

// MountsSuffix ends the tag of the cache-mount image beside a cache tag
// (`buildcache-mounts` beside `buildcache`).
const MountsSuffix = "-mounts"

// For derives the references for a build of imageTag on branch. cacheRef
// ("repository:tag", empty for imageTag's repository with DefaultTag) is the
// default branch's cache; other branches get that tag plus a suffix made from
// their name. With no branch known, every build shares cacheRef.
func For(imageTag, cacheRef, branch, defaultBranch string) (Refs, error) {
	base := cacheRef
	if base == "" {
		named, err := reference.ParseNormalizedNamed(imageTag)
		if err != nil {
			return Refs{}, fmt.Errorf("image tag %q: %w", imageTag, err)
		}
		base = reference.TrimNamed(named).String() + ":" + DefaultTag
	}
	named, err := reference.ParseNormalizedNamed(base)
	if err != nil {
		return Refs{}, fmt.Errorf("cache reference %q: %w", base, err)
	}
	repo := reference.TrimNamed(named).String()
	tag := DefaultTag
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	refs := func(tag string) (imports []string, export string) {
		ref := func(b string) string { return repo + ":" + BranchTag(tag, b, defaultBranch) }
		export = ref(branch)
		imports = append(imports, export)
		if fallback := ref(defaultBranch); fallback != export {
			imports = append(imports, fallback)
		}
		return imports, export
	}
	var r Refs
	r.Import, r.Export = refs(tag)
	r.MountsImport, r.MountsExport = refs(tag + MountsSuffix)
	return r, nil
}

// maxTag is the registry's limit on a tag's length.
const maxTag = 128

// BranchTag is the cache tag of branch: tag itself for the default branch
// (or an unknown one), else tag-<name>-<hash>. The name part keeps only the
// characters a tag allows, so it stays readable in a registry listing; the
// hash of the full branch name keeps branches apart that read the same once
// cleaned ("feature/a", "feature-a", "Feature/A").
func BranchTag(tag, branch, defaultBranch string) string {
	if branch == "" || branch == defaultBranch {
		return tag
	}
	sum := sha256.Sum256([]byte(branch))
	hash := hex.EncodeToString(sum[:4])
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		default:
			return '-'
		}
	}, branch)
	room := maxTag - len(tag) - len(hash) - 2
	if room < 0 {
		room = 0
	}
	if len(name) > room {
		name = name[:room]
	}
	name = strings.Trim(name, "-.")
	if name == "" {
		return tag + "-" + hash
	}
	return tag + "-" + name + "-" + hash
}
