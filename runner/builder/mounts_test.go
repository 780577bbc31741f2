package builder

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestMountsRestoreFailureSaysWhatItFoundOnce(t *testing.T) {
	ref := "127.0.0.1:5000/acme/app:buildcache-mounts"
	for msg, want := range map[string]string{
		"failed to solve: " + ref + ": failed to resolve source metadata for " + ref + ": " + ref + ": not found": "not found",
		"failed to solve: process \"/bin/sh -c cp -a\" did not complete successfully: exit code: 1":               "failed to solve: process \"/bin/sh -c cp -a\" did not complete successfully: exit code: 1",
		"failed to solve: " + ref + ": ": "failed to solve: " + ref + ": ",
	} {
		if got := afterRef(msg, ref); got != want {
			t.Errorf("afterRef(%q) = %q, want %q", msg, got, want)
		}
	}
}

func TestMountsRestoreTriesEachImportInOrderUntilOneIsThere(t *testing.T) {
	branch, main := "reg.example/app:buildcache-feat-mounts", "reg.example/app:buildcache-mounts"
	req := Request{BuildID: "af-1", Cache: Cache{Mounts: Mounts{
		Carried: []Mount{{ID: "next-abc", Path: "/app/.next/cache"}},
		Helper:  "reg.example/node:22",
		Import:  []string{branch, main},
	}}}
	var seeds []string
	build := func(_ context.Context, dockerfile, pushTo string, _ io.Writer) error {
		if pushTo != "" {
			t.Errorf("a restore pushed to %q", pushTo)
		}
		seed := strings.TrimSuffix(strings.SplitN(dockerfile, "\n", 2)[0], " AS seed")
		seeds = append(seeds, strings.TrimPrefix(seed, "FROM "))
		if seed == "FROM "+branch {
			// buildkitd's words for a tag the registry does not have.
			return errors.New("rpc error: code = Unknown desc = failed to solve: " + branch + ": failed to resolve source metadata for " + branch + ": " + branch + ": not found")
		}
		return nil
	}
	var out strings.Builder
	RestoreMounts(context.Background(), req, build, &out)
	if strings.Join(seeds, " ") != branch+" "+main {
		t.Errorf("restored from %q, want the branch's mounts, then the default branch's", seeds)
	}
	if !strings.Contains(out.String(), "cache mounts: restored from "+main) {
		t.Errorf("the log does not say where the mounts came from:\n%s", out.String())
	}

	// Neither there: one line, each ref's answer once, and the build goes on.
	out.Reset()
	RestoreMounts(context.Background(), req, func(context.Context, string, string, io.Writer) error {
		return errors.New("failed to solve: " + main + ": not found")
	}, &out)
	if got := out.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "none restored") ||
		strings.Contains(got, "rpc error") {
		t.Errorf("a restore that found nothing said:\n%s", got)
	}
}
