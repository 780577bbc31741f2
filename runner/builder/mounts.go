package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tonistiigi/fsutil"
)

// Cache mounts stay in the daemon that filled them, and a registry cache
// carries layers only, so on a new builder the step that lives on a mount
// (next build on .next/cache, go build on the module and build caches) runs
// cold after every layer before it came from the registry. The mounts a
// template names are carried as an image of their own beside the cache:
// one directory per mount id. Two small builds of a generated Dockerfile
// move them, each on the build stage's own base image (pulled anyway) with
// no network: one restores them into the still empty mounts before the
// build, the other collects them after the report. Neither is part of the
// build's graph, so the build's cache keys never depend on them. Both
// backends run them the same way; only how a Dockerfile reaches the daemon
// differs (HelperBuild).

// The helpers take the mounts with sharing=locked: BuildKit hands a shared
// cache mount that another solve still holds (the build's, released a moment
// after it ends) as a new, empty one, and the first export after a cold
// build found .next/cache empty that way. Locked waits for the holder.

// maxCarriedKiB bounds one mount carried in the image: a cache that grew
// past it (a Go build cache over years of builds) costs more to move than
// it saves; it stays on the builder that has it.
const maxCarriedKiB = 2 << 20

// HelperBuild builds a generated Dockerfile on a backend's daemon with no
// network, its RUN step never taken from the daemon's cache, and writes
// what that step prints to out; pushTo, when not "", receives the image,
// with the build's registry credentials. An error's message is the
// daemon's, for the build log.
type HelperBuild func(ctx context.Context, dockerfile, pushTo string, out io.Writer) error

// RestoreMounts copies the newest mounts image it finds into the mounts
// that are empty on this daemon. Its failure is a log line: the build runs
// without the mounts, as it would have without this.
func RestoreMounts(ctx context.Context, req Request, build HelperBuild, out io.Writer) {
	m := req.Cache.Mounts
	if len(m.Carried) == 0 || len(m.Import) == 0 {
		return
	}
	start := time.Now()
	var tried []string
	for _, ref := range m.Import {
		err := build(ctx, restoreDockerfile(m, ref, req.Platform), "", out)
		if err == nil {
			fmt.Fprintf(out, "cache mounts: restored from %s in %s\n", ref, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if ctx.Err() != nil {
			return
		}
		tried = append(tried, fmt.Sprintf("%s: %s", ref, afterRef(DaemonMessage(err), ref)))
	}
	fmt.Fprintf(out, "cache mounts: none restored, the build starts with empty ones (%s)\n", strings.Join(tried, "; "))
}

// ExportMounts pushes this daemon's carried mounts to the export image.
func ExportMounts(ctx context.Context, req Request, build HelperBuild, out io.Writer) {
	m := req.Cache.Mounts
	if len(m.Carried) == 0 || m.Export == "" {
		return
	}
	switch err := build(ctx, collectDockerfile(m, req.Platform), m.Export, out); {
	case err == nil:
		fmt.Fprintf(out, "cache mounts: exported to %s\n", m.Export)
	case ctx.Err() != nil:
		fmt.Fprintf(out, "cache mounts: export to %s stopped: %v\n", m.Export, context.Cause(ctx))
	default:
		fmt.Fprintf(out, "cache mounts: export to %s failed (the build goes on): %s\n", m.Export, DaemonMessage(err))
	}
}

// MountsExportFollows says, in the push's log, that the mounts are exported
// once the build is reported (ExportMounts, from Builder.ExportCache).
func MountsExportFollows(req Request, out io.Writer) {
	if m := req.Cache.Mounts; len(m.Carried) > 0 && m.Export != "" {
		fmt.Fprintf(out, "cache mounts: exported to %s after this build is reported\n", m.Export)
	}
}

// HelperContext is a helper build's context: a new directory holding only
// dockerfile, as Dockerfile; remove deletes it.
func HelperContext(dockerfile string) (_ fsutil.FS, remove func(), _ error) {
	dir, err := os.MkdirTemp("", "af-mounts-")
	if err != nil {
		return nil, nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		remove()
		return nil, nil, err
	}
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		remove()
		return nil, nil, err
	}
	return fs, remove, nil
}

// nonceArg is the helper Dockerfiles' build argument HelperNonce sets.
const nonceArg = "AF_NONCE"

// HelperNonce is the build argument that keeps a helper's RUN step out of
// the daemon's cache: its value differs on every call.
func HelperNonce(req Request) (name, value string) {
	return nonceArg, fmt.Sprintf("%s-%d", req.BuildID, time.Now().UnixNano())
}

// mountPoint is where the helper sees the i-th carried mount.
func mountPoint(i int) string { return fmt.Sprintf("/af-mount/%d", i) }

// restoreDockerfile copies each mount's directory from the image seed into
// the mount, unless the mount already holds something: a builder that kept
// its own has a newer one.
func restoreDockerfile(m Mounts, seed, platform string) string {
	var flags, script strings.Builder
	flags.WriteString("--mount=type=bind,from=seed,target=/af-seed ")
	for i, c := range m.Carried {
		fmt.Fprintf(&flags, "--mount=type=cache,id=%s,target=%s,sharing=locked ", c.ID, mountPoint(i))
		fmt.Fprintf(&script, `if [ ! -d /af-seed/%[1]s ]; then echo "cache mounts: %[3]s: not in the image"; `+
			`elif [ -n "$(ls -A %[2]s)" ]; then echo "cache mounts: %[3]s: kept this builder's own"; `+
			`else cp -a /af-seed/%[1]s/. %[2]s/ && echo "cache mounts: %[3]s: restored $(du -sh %[2]s | cut -f1)"; fi; `,
			c.ID, mountPoint(i), c.Path)
	}
	return fmt.Sprintf("FROM %s AS seed\nFROM %s\nARG %s\nRUN %sset -e; %s\n",
		seed, fromImage(m.Helper, platform), nonceArg, flags.String(), strings.TrimSpace(script.String()))
}

// collectDockerfile copies each mount into a directory named by its id, in
// an image of one layer.
func collectDockerfile(m Mounts, platform string) string {
	var flags, script strings.Builder
	for i, c := range m.Carried {
		fmt.Fprintf(&flags, "--mount=type=cache,id=%s,target=%s,sharing=locked ", c.ID, mountPoint(i))
		fmt.Fprintf(&script, `s=$(du -sk %[2]s | cut -f1); `+
			`if [ -z "$(ls -A %[2]s)" ]; then echo "cache mounts: %[3]s: empty"; `+
			`elif [ "$s" -gt %[4]d ]; then echo "cache mounts: %[3]s: $s KiB, over the %[4]d KiB a carried mount may hold: not carried"; `+
			`else mkdir -p /af-out/%[1]s && cp -a %[2]s/. /af-out/%[1]s/ && echo "cache mounts: %[3]s: $(du -sh /af-out/%[1]s | cut -f1)"; fi; `,
			c.ID, mountPoint(i), c.Path, maxCarriedKiB)
	}
	return fmt.Sprintf("FROM %s AS collect\nARG %s\nRUN %sset -e; mkdir -p /af-out; %s\n\nFROM scratch\nCOPY --from=collect /af-out/ /\n",
		fromImage(m.Helper, platform), nonceArg, flags.String(), strings.TrimSpace(script.String()))
}

func fromImage(image, platform string) string {
	if platform == "" {
		return image
	}
	return "--platform=" + platform + " " + image
}

// afterRef is what a daemon's error says about ref once it stops repeating
// the reference: "failed to solve: R: failed to resolve source metadata for
// R: R: not found" is "not found", the usual answer on a repository's first
// build.
func afterRef(msg, ref string) string {
	if i := strings.LastIndex(msg, ref+": "); i >= 0 && i+len(ref)+2 < len(msg) {
		return msg[i+len(ref)+2:]
	}
	return msg
}

// DaemonMessage is err's message without gRPC's "rpc error: code = Unknown
// desc = ", which says nothing to a user (buildkitd's errors carry it).
func DaemonMessage(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, " desc = "); i >= 0 && strings.HasPrefix(msg, "rpc error:") {
		msg = msg[i+len(" desc = "):]
	}
	return msg
}
