package subscriptions_test

import (
	"strings"
	"testing"

	"github.com/alternatefutures/af-builder/functions/dispatch/subscriptions"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook"
	"github.com/alternatefutures/af-builder/shared/validate"
)

func changed(files ...string) webhook.Push {
	return webhook.Push{Changed: files, ChangesKnown: true}
}

func TestWatchPathsAndRootDirectory(t *testing.T) {
	for name, tc := range map[string]struct {
		push  webhook.Push
		root  string
		watch []string
		want  bool
	}{
		"no filter builds everything":       {changed("README.md"), ".", nil, true},
		"root directory hit":                {changed("README.md", "apps/web/src/main.ts"), "apps/web", nil, true},
		"root directory miss":               {changed("apps/api/main.go", "README.md"), "apps/web", nil, false},
		"root is not a string prefix":       {changed("apps/web-old/x"), "apps/web", nil, false},
		"root given with ./ and slash":      {changed("apps/web/x"), "./apps/web/", nil, true},
		"watch glob hit":                    {changed("packages/ui/button.tsx"), "apps/web", []string{"apps/web/**", "packages/**/*.tsx"}, true},
		"watch glob miss":                   {changed("docs/intro.md"), ".", []string{"src/**"}, false},
		"watch paths win over the root":     {changed("apps/web/README.md"), "apps/web", []string{"apps/web/src/**"}, false},
		"bare directory covers its content": {changed("docs/a/b.md"), ".", []string{"docs"}, true},
		"single star names a directory":     {changed("packages/ui/x.ts"), ".", []string{"packages/*"}, true},
		"negation takes paths back out":     {changed("src/main_test.go"), ".", []string{"src/**", "!**/*_test.go"}, false},
		"negation leaves the rest":          {changed("src/main_test.go", "src/main.go"), ".", []string{"src/**", "!**/*_test.go"}, true},
		"leading slash is the repo root":    {changed("Dockerfile"), ".", []string{"/Dockerfile"}, true},
		"removed files count":               {changed("src/gone.go"), ".", []string{"src/**"}, true},
		"unknown changes build":             {webhook.Push{ChangesKnown: false}, "apps/web", []string{"apps/web/**"}, true},
	} {
		t.Run(name, func(t *testing.T) {
			got, reason := subscriptions.Touches(tc.push.Changed, tc.push.ChangesKnown, tc.root, tc.watch)
			if got != tc.want {
				t.Errorf("Touches = %v (%s), want %v", got, reason, tc.want)
			}
			if !got && reason == "" {
				t.Error("a skip must come with a reason for the log")
			}
		})
	}
}

func TestValidateWatchPaths(t *testing.T) {
	if err := validate.WatchPaths([]string{"src/**", "!**/*.md", "docs"}); err != nil {
		t.Error(err)
	}
	for _, bad := range [][]string{{"src/[a"}, {""}, {"!"}} {
		if err := validate.WatchPaths(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, ok := range [][]string{nil, {}, {"!**/*.md", "docs/**"}, {"**", "!**/*.md"}} {
		if err := validate.WatchPaths(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// Negations only take paths back out, so a list of nothing else never
// matches and the service would silently never build.
func TestWatchPathsOfOnlyNegationsAreRefused(t *testing.T) {
	for _, bad := range [][]string{{"!docs/**"}, {"!**/*.md", "!README.md"}} {
		if got, _ := subscriptions.Touches([]string{"src/main.go", "docs/a.md"}, true, ".", bad); got {
			t.Fatalf("%q matched: the premise of this test is wrong", bad)
		}
		err := validate.WatchPaths(bad)
		if err == nil || !strings.Contains(err.Error(), "need at least one positive pattern") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}
