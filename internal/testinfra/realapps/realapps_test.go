package realapps

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAppsAreSourceWithLockfiles: every app commits a lockfile matching its
// manifest and nothing an install leaves behind, so a build really fetches.
func TestAppsAreSourceWithLockfiles(t *testing.T) {
	lockfiles := map[string][]string{
		"express":   {"package.json", "package-lock.json"},
		"nextjs":    {"package.json", "package-lock.json"},
		"goservice": {"go.mod", "go.sum"},
		"flask":     {"requirements.txt"},
	}
	for _, a := range All {
		files, err := a.Files()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range lockfiles[a.Name] {
			if _, ok := files[f]; !ok {
				t.Errorf("%s: no %s", a.Name, f)
			}
		}
		for p := range files {
			if strings.HasPrefix(p, "node_modules/") || strings.Contains(p, "/node_modules/") || strings.HasPrefix(p, ".next/") {
				t.Errorf("%s: commits installed or built file %s", a.Name, p)
			}
		}
		if pj, ok := files["package.json"]; ok {
			var manifest struct {
				Dependencies map[string]string `json:"dependencies"`
			}
			var lock struct {
				LockfileVersion int `json:"lockfileVersion"`
				Packages        map[string]struct {
					Dependencies map[string]string `json:"dependencies"`
					Resolved     string            `json:"resolved"`
				} `json:"packages"`
			}
			if err := json.Unmarshal([]byte(pj.Content), &manifest); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(files["package-lock.json"].Content), &lock); err != nil {
				t.Fatal(err)
			}
			// npm 9 (Debian bookworm's) reads lockfile versions 2 and 3.
			if lock.LockfileVersion < 2 {
				t.Errorf("%s: lockfileVersion %d", a.Name, lock.LockfileVersion)
			}
			for dep, want := range manifest.Dependencies {
				if got := lock.Packages[""].Dependencies[dep]; got != want {
					t.Errorf("%s: lockfile root has %s %q, package.json %q", a.Name, dep, got, want)
				}
				if r := lock.Packages["node_modules/"+dep].Resolved; !strings.HasPrefix(r, "https://registry.npmjs.org/") {
					t.Errorf("%s: %s resolved from %q, want the npm registry", a.Name, dep, r)
				}
			}
		}
	}
}

func TestSourceChangeTouchesOnlyTheSourceFile(t *testing.T) {
	for _, a := range All {
		files, err := a.Files()
		if err != nil {
			t.Fatal(err)
		}
		ch := a.SourceChange(files, 1)
		if len(ch) != 1 || ch[a.SourceFile].Content == files[a.SourceFile].Content {
			t.Errorf("%s: change %v", a.Name, ch)
		}
		if ch2 := a.SourceChange(files, 2); ch2[a.SourceFile].Content == ch[a.SourceFile].Content {
			t.Errorf("%s: two warm builds made the same change", a.Name)
		}
	}
}
