package dockerd

import (
	"archive/tar"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/internal/testinfra"
)

// BusyboxPath is where Debian's busybox-static puts its binary.
const BusyboxPath = "/bin/busybox"

// busyboxChanges are Dockerfile instructions applied on import, as with
// `docker import --change`. PATH is set because applets live in the four
// standard bin dirs and an imported image has no environment at all.
var busyboxChanges = []string{
	`ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
	`CMD ["/bin/sh"]`,
}

// ImportBusybox makes the image ref (e.g. "busybox:latest") on the engine at
// host, the way `docker import` would, from a root filesystem built here:
// the host's static /bin/busybox, a symlink for every applet it reports
// (sh, echo, cat, httpd, nc, wget, sed, grep, ...) where busybox installs it,
// /tmp, /root, /etc/passwd and /etc/group with root and nobody, PATH set and
// CMD ["/bin/sh"]. Nothing is pulled. If ref already exists it is left as is.
func ImportBusybox(ctx context.Context, host, ref string) error {
	c, err := client.New(client.WithHost(host))
	if err != nil {
		return fmt.Errorf("import busybox: %w", err)
	}
	defer c.Close()
	if _, err := c.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("import busybox: inspect %s: %w", ref, err)
	}

	bin, applets, err := busybox()
	if err != nil {
		return fmt.Errorf("import busybox: %w", err)
	}
	pr, pw := io.Pipe()
	var werr error
	wrote := make(chan struct{})
	go func() {
		werr = writeRootfs(pw, bin, applets)
		pw.CloseWithError(werr)
		close(wrote)
	}()
	// However the request ends, unblock the writer and wait for it so the
	// goroutine never outlives the call.
	defer func() {
		pr.Close()
		<-wrote
	}()

	res, err := c.ImageImport(ctx, client.ImageImportSource{Source: pr, SourceName: "-"}, ref,
		client.ImageImportOptions{Changes: busyboxChanges, Message: "af-builder testinfra busybox"})
	if err != nil {
		return fmt.Errorf("import busybox: %w", err)
	}
	defer res.Close()
	if err := ReadProgress(res); err != nil {
		return fmt.Errorf("import busybox: %w", err)
	}
	// The daemon answers only after reading the whole tar, so a tar error
	// shows up here rather than as a failed request.
	pr.Close()
	<-wrote
	if werr != nil && !errors.Is(werr, io.ErrClosedPipe) {
		return fmt.Errorf("import busybox: build rootfs: %w", werr)
	}

	img, err := c.ImageInspect(ctx, ref)
	if err != nil {
		return fmt.Errorf("import busybox: inspect after import: %w", err)
	}
	if img.Config == nil || !slices.Equal(img.Config.Cmd, []string{"/bin/sh"}) {
		return fmt.Errorf("import busybox: %s imported without CMD [\"/bin/sh\"]", ref)
	}
	return nil
}

// Busybox returns the host's static busybox binary and its applets (paths
// relative to /), for other builders of the same base image (buildkitd's
// testinfra pushes it to a registry, since BuildKit pulls its FROM images).
func Busybox() ([]byte, []string, error) { return busybox() }

// busybox returns the host's busybox binary and its applets as paths
// relative to / (from `busybox --list-full`), after checking that it is
// statically linked: Debian's plain busybox package installs a dynamic
// /bin/busybox that would not run in an image without libc.
func busybox() ([]byte, []string, error) {
	path, err := testinfra.LookPath(BusyboxPath, "busybox-static")
	if err != nil {
		return nil, nil, err
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			f.Close()
			return nil, nil, fmt.Errorf("%s is dynamically linked (apt-get install -y busybox-static)", path)
		}
	}
	f.Close()
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	out, err := exec.Command(path, "--list-full").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("%s --list-full: %w", path, err)
	}
	var applets []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		// Entries without a directory (linuxrc) belong to initramfs use.
		if !strings.Contains(l, "/") || strings.Contains(l, "..") || strings.HasPrefix(l, "/") || l == "bin/busybox" {
			continue
		}
		applets = append(applets, l)
	}
	if !slices.Contains(applets, "bin/sh") {
		return nil, nil, fmt.Errorf("%s --list-full has no bin/sh", path)
	}
	return bin, applets, nil
}

// writeRootfs writes the image's root filesystem as a tar stream. Times and
// owners are fixed so the layer (and its diff id) is the same on every run.
func writeRootfs(w io.Writer, bin []byte, applets []string) error {
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tw := tar.NewWriter(w)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	dirs := []struct {
		name string
		mode int64
	}{
		{"bin", 0o755}, {"sbin", 0o755}, {"usr", 0o755}, {"usr/bin", 0o755}, {"usr/sbin", 0o755},
		{"usr/local", 0o755}, {"usr/local/bin", 0o755},
		{"etc", 0o755}, {"root", 0o700}, {"home", 0o755}, {"var", 0o755}, {"var/tmp", 0o1777},
		{"tmp", 0o1777}, {"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755},
	}
	for _, d := range dirs {
		if err := dir(d.name, d.mode); err != nil {
			return err
		}
	}
	if err := file("bin/busybox", 0o755, bin); err != nil {
		return err
	}
	for _, a := range applets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: a, Linkname: "/bin/busybox", Mode: 0o777, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group := "root:x:0:\nnogroup:x:65534:\n"
	if err := file("etc/passwd", 0o644, []byte(passwd)); err != nil {
		return err
	}
	if err := file("etc/group", 0o644, []byte(group)); err != nil {
		return err
	}
	return tw.Close()
}

// ReadProgress drains a Docker progress stream and returns the first
// error message in it; a failed import is reported this way, with HTTP 200.
func ReadProgress(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read progress: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}
