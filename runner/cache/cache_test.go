package cache

import (
	"slices"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

func TestDefaultBranchUsesTheCacheTagNextToTheImage(t *testing.T) {
	r, err := For("ghcr.io/af/u1--app:0123456789ab", "", "main", "main")
	if err != nil {
		t.Fatal(err)
	}
	want := "ghcr.io/af/u1--app:buildcache"
	if r.Export != want || !slices.Equal(r.Import, []string{want}) {
		t.Errorf("refs = %+v, want import and export %s", r, want)
	}
}

func TestBranchImportsItsOwnThenTheDefaultBranchesCacheAndExportsOnlyItsOwn(t *testing.T) {
	r, err := For("127.0.0.1:5000/u1/app:abc", "", "feature/login", "main")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.Export, "127.0.0.1:5000/u1/app:buildcache-feature-login-") {
		t.Errorf("export = %s, want the branch's own tag", r.Export)
	}
	if len(r.Import) != 2 || r.Import[0] != r.Export || r.Import[1] != "127.0.0.1:5000/u1/app:buildcache" {
		t.Errorf("import = %v, want [%s, the default branch's]", r.Import, r.Export)
	}
}

func TestCacheRefOverridesRepositoryAndTag(t *testing.T) {
	r, err := For("ghcr.io/af/app:1", "registry.example.com/caches/app:cache", "dev", "main")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.Export, "registry.example.com/caches/app:cache-dev-") ||
		r.Import[1] != "registry.example.com/caches/app:cache" {
		t.Errorf("refs = %+v", r)
	}
}

func TestUnknownBranchSharesOneCache(t *testing.T) {
	r, err := For("ghcr.io/af/app:1", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Export != "ghcr.io/af/app:buildcache" || len(r.Import) != 1 {
		t.Errorf("refs = %+v", r)
	}
	// A branch whose default is unknown still falls back to the shared one.
	r, _ = For("ghcr.io/af/app:1", "", "dev", "")
	if len(r.Import) != 2 || r.Import[1] != "ghcr.io/af/app:buildcache" {
		t.Errorf("refs = %+v", r)
	}
}

func TestBranchTagsAreValidAndDoNotCollide(t *testing.T) {
	branches := []string{
		"feature/a", "feature-a", "Feature/A", "feature_a", "a", "-", "ü/ß", "release/1.2",
		"x" + strings.Repeat("y", 250), "x" + strings.Repeat("y", 251), ".hidden", "dots..", "@",
	}
	seen := map[string]string{}
	for _, b := range branches {
		tag := BranchTag(DefaultTag, b, "main")
		if _, err := reference.ParseNormalizedNamed("ghcr.io/af/app:" + tag); err != nil || len(tag) > 128 {
			t.Errorf("branch %q: tag %q is not a valid tag (%v, %d bytes)", b, tag, err, len(tag))
		}
		if other, ok := seen[tag]; ok {
			t.Errorf("branches %q and %q share the cache tag %q", b, other, tag)
		}
		seen[tag] = b
		if tag == DefaultTag {
			t.Errorf("branch %q writes the default branch's cache", b)
		}
	}
	if got := BranchTag(DefaultTag, "main", "main"); got != DefaultTag {
		t.Errorf("default branch tag = %q", got)
	}
}

func TestCacheMountsImageFollowsTheCacheTagsBranchRule(t *testing.T) {
	r, err := For("127.0.0.1:5000/u1/app:abc", "", "feature/login", "main")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.MountsExport, "127.0.0.1:5000/u1/app:buildcache-mounts-feature-login-") {
		t.Errorf("mounts export = %s, want the branch's own tag", r.MountsExport)
	}
	if len(r.MountsImport) != 2 || r.MountsImport[0] != r.MountsExport || r.MountsImport[1] != "127.0.0.1:5000/u1/app:buildcache-mounts" {
		t.Errorf("mounts import = %v, want [%s, the default branch's]", r.MountsImport, r.MountsExport)
	}
	// Neither is ever one of the layer cache's references.
	for _, m := range append(r.MountsImport, r.MountsExport) {
		if slices.Contains(r.Import, m) || m == r.Export {
			t.Errorf("the mounts image %s is also a layer cache reference", m)
		}
	}
}
