package buildkit

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	"github.com/tonistiigi/fsutil"

	"github.com/alternatefutures/af-builder/runner/builder"
)

// Cache mounts stay in the daemon that filled them, and a registry cache
// carries layers only, so on a new builder the step that lives on a mount
// (next build on .next/cache, go build on the module and build caches) runs
// cold after every layer before it came from the registry. The mounts a
// template names are carried as an image of their own beside the cache:
// one directory per mount id. Two small solves of a generated Dockerfile
// move them, each on the build stage's own base image (pulled anyway) with
// no network: one restores them into the still empty mounts before the
// build, the other collects them after the report. Neither is part of the
// build's graph, so the build's cache keys never depend on them.

// The helpers take the mounts with sharing=locked: BuildKit hands a shared
// cache mount that another solve still holds (the build's, released a moment
// after it ends) as a new, empty one, and the first export after a cold
// build found .next/cache empty that way. Locked waits for the holder.

// maxCarriedKiB bounds one mount carried in the image: a cache that grew
// past it (a Go build cache over years of builds) costs more to move than
// it saves; it stays on the builder that has it.
const maxCarriedKiB = 2 << 20

// restoreMounts copies the newest mounts image it finds into the mounts
// that are empty on this daemon. Its failure is a log line: the build runs
// without the mounts, as it did before.
func (b *Builder) restoreMounts(ctx context.Context, req builder.Request, out io.Writer) {
	m := req.Cache.Mounts
	if len(m.Carried) == 0 || len(m.Import) == 0 {
		return
	}
	start := time.Now()
	var tried []string
	for _, ref := range m.Import {
		err := b.solveHelper(ctx, req, restoreDockerfile(m, ref, req.Platform), nil, out)
		if err == nil {
			fmt.Fprintf(out, "cache mounts: restored from %s in %s\n", ref, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if ctx.Err() != nil {
			return
		}
		tried = append(tried, fmt.Sprintf("%s: %s", ref, afterRef(unwrapMessage(err), ref)))
	}
	fmt.Fprintf(out, "cache mounts: none restored, the build starts with empty ones (%s)\n", strings.Join(tried, "; "))
}

// exportMounts pushes this daemon's carried mounts to the export image.
func (b *Builder) exportMounts(ctx context.Context, req builder.Request, out io.Writer) {
	m := req.Cache.Mounts
	if len(m.Carried) == 0 || m.Export == "" {
		return
	}
	exports := []bkclient.ExportEntry{{
		Type: bkclient.ExporterImage,
		Attrs: map[string]string{
			"name":           m.Export,
			"push":           "true",
			"oci-mediatypes": "false",
			// Made once, read once by the next new builder: the fastest
			// gzip, as for the registry cache.
			"compression":       "gzip",
			"compression-level": "1",
		},
	}}
	switch err := b.solveHelper(ctx, req, collectDockerfile(m, req.Platform), exports, out); {
	case err == nil:
		fmt.Fprintf(out, "cache mounts: exported to %s\n", m.Export)
	case ctx.Err() != nil:
		fmt.Fprintf(out, "cache mounts: export to %s stopped: %v\n", m.Export, context.Cause(ctx))
	default:
		fmt.Fprintf(out, "cache mounts: export to %s failed (the build goes on): %s\n", m.Export, unwrapMessage(err))
	}
}

// mountPoint is where the helper sees the i-th carried mount.
func mountPoint(i int) string { return fmt.Sprintf("/af-mount/%d", i) }

// restoreDockerfile copies each mount's directory from the image seed into
// the mount, unless the mount already holds something: a builder that kept
// its own has a newer one.
func restoreDockerfile(m builder.Mounts, seed, platform string) string {
	var flags, script strings.Builder
	flags.WriteString("--mount=type=bind,from=seed,target=/af-seed ")
	for i, c := range m.Carried {
		fmt.Fprintf(&flags, "--mount=type=cache,id=%s,target=%s,sharing=locked ", c.ID, mountPoint(i))
		fmt.Fprintf(&script, `if [ ! -d /af-seed/%[1]s ]; then echo "cache mounts: %[3]s: not in the image"; `+
			`elif [ -n "$(ls -A %[2]s)" ]; then echo "cache mounts: %[3]s: kept this builder's own"; `+
			`else cp -a /af-seed/%[1]s/. %[2]s/ && echo "cache mounts: %[3]s: restored $(du -sh %[2]s | cut -f1)"; fi; `,
			c.ID, mountPoint(i), c.Path)
	}
	return fmt.Sprintf("FROM %s AS seed\nFROM %s\nARG AF_NONCE\nRUN %sset -e; %s\n",
		seed, fromImage(m.Helper, platform), flags.String(), strings.TrimSpace(script.String()))
}

// collectDockerfile copies each mount into a directory named by its id, in
// an image of one layer.
func collectDockerfile(m builder.Mounts, platform string) string {
	var flags, script strings.Builder
	for i, c := range m.Carried {
		fmt.Fprintf(&flags, "--mount=type=cache,id=%s,target=%s,sharing=locked ", c.ID, mountPoint(i))
		fmt.Fprintf(&script, `s=$(du -sk %[2]s | cut -f1); `+
			`if [ -z "$(ls -A %[2]s)" ]; then echo "cache mounts: %[3]s: empty"; `+
			`elif [ "$s" -gt %[4]d ]; then echo "cache mounts: %[3]s: $s KiB, over the %[4]d KiB a carried mount may hold: not carried"; `+
			`else mkdir -p /af-out/%[1]s && cp -a %[2]s/. /af-out/%[1]s/ && echo "cache mounts: %[3]s: $(du -sh /af-out/%[1]s | cut -f1)"; fi; `,
			c.ID, mountPoint(i), c.Path, maxCarriedKiB)
	}
	return fmt.Sprintf("FROM %s AS collect\nARG AF_NONCE\nRUN %sset -e; mkdir -p /af-out; %s\n\nFROM scratch\nCOPY --from=collect /af-out/ /\n",
		fromImage(m.Helper, platform), flags.String(), strings.TrimSpace(script.String()))
}

func fromImage(image, platform string) string {
	if platform == "" {
		return image
	}
	return "--platform=" + platform + " " + image
}

// solveHelper solves a generated Dockerfile with no network, its RUN step
// never taken from the daemon's cache (AF_NONCE), and writes what the step
// prints to out.
func (b *Builder) solveHelper(ctx context.Context, req builder.Request, dockerfile string, exports []bkclient.ExportEntry, out io.Writer) error {
	dir, err := os.MkdirTemp("", "af-mounts-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	dfFS, err := fsutil.NewFS(dir)
	if err != nil {
		return err
	}
	attrs := map[string]string{
		"filename":           "Dockerfile",
		"force-network-mode": "none",
		"build-arg:AF_NONCE": fmt.Sprintf("%s-%d", req.BuildID, time.Now().UnixNano()),
	}
	if req.Platform != "" {
		attrs["platform"] = req.Platform
	}
	opt := bkclient.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": dfFS, "dockerfile": dfFS},
		Exports:       exports,
		Session:       []session.Attachable{authProvider(req)},
	}
	statuses := make(chan *bkclient.SolveStatus)
	shown := make(chan struct{})
	go func() {
		defer close(shown)
		for st := range statuses {
			for _, l := range st.Logs {
				_, _ = out.Write(l.Data)
			}
		}
	}()
	_, err = b.c.Solve(ctx, nil, opt, statuses)
	<-shown
	return err
}

// afterRef is what BuildKit's error says about ref once it stops repeating
// the reference: "failed to solve: R: failed to resolve source metadata for
// R: R: not found" is "not found", the usual answer on a repository's first
// build.
func afterRef(msg, ref string) string {
	if i := strings.LastIndex(msg, ref+": "); i >= 0 && i+len(ref)+2 < len(msg) {
		return msg[i+len(ref)+2:]
	}
	return msg
}
