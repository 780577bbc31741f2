package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/runner/builder"
)

// The engine keeps every build's result as an image, the mounts helpers'
// too; on a long-lived daemon (the local executor's) one per build would
// pile up. After builds that restore and export carried mounts, the daemon
// holds the base and the builds' own images, nothing untagged.
func TestCarriedMountsLeaveNoImagesBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs dockerd and docker-registry")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	reg, base := registryWithBase(ctx, t)
	e, d := newEngine(t)

	dir := t.TempDir()
	df := "FROM " + base + "\nCOPY n /n\nRUN --mount=type=cache,id=kept,target=/m cp /n /m/n\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := reg.Ref("app", "buildcache-mounts")
	var tags []string
	for i := range 2 {
		if err := os.WriteFile(filepath.Join(dir, "n"), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		req := builder.Request{
			ContextDir: dir, DockerfileDir: dir, DockerfileName: "Dockerfile",
			Tag: reg.Ref("app", fmt.Sprint(i)), NetworkMode: "host", BuildID: fmt.Sprintf("leave-%d", i),
			RegistryHost: reg.Addr(), RegistryUser: reg.User(), RegistryToken: reg.Password(),
			Cache: builder.Cache{Mounts: builder.Mounts{
				Carried: []builder.Mount{{ID: "kept", Path: "/m"}}, Helper: base,
				Import: []string{mounts}, Export: mounts,
			}},
		}
		var out strings.Builder
		if _, err := e.Build(ctx, req, &out); err != nil {
			t.Fatalf("Build: %v\n%s", err, out.String())
		}
		e.ExportCache(ctx, req, &out)
		if !strings.Contains(out.String(), "cache mounts: exported to "+mounts+"\n") {
			t.Fatalf("build %d exported no mounts:\n%s", i, out.String())
		}
		tags = append(tags, req.Tag)
	}

	c, err := client.New(client.WithHost(d.Host()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	images, err := c.ImageList(ctx, client.ImageListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range images.Items {
		named := false
		for _, tag := range im.RepoTags {
			named = named || tag == base || tag == tags[0] || tag == tags[1]
		}
		if !named {
			t.Errorf("image %s (%v) left on the daemon", im.ID, im.RepoTags)
		}
	}
}
