package kubenode

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/alternatefutures/af-builder/internal/testinfra"
)

// Image is a single-layer image described by its files and config, written
// as a docker-save archive (the format `docker save` produces and
// `ctr images import` reads) because nothing can be pulled here.
type Image struct {
	// Name is the full reference the node knows it by, e.g.
	// "registry.k8s.io/pause:3.9"; pods name it with imagePullPolicy Never.
	Name       string
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
	User       string
	WorkingDir string
}

// File is one entry of an image's root filesystem.
type File struct {
	Path string // absolute inside the image
	// Mode carries the permission bits; fs.ModeDir and fs.ModeSymlink
	// select a directory or symlink, anything else is a regular file.
	Mode     fs.FileMode
	UID, GID int
	Data     []byte // contents of a regular file, or
	Source   string // a host file to copy (symlinks followed)
	Link     string // symlink target
	// Xattrs are extended attributes of the entry (e.g.
	// security.capability), written as PAX records that containerd applies.
	Xattrs map[string]string
}

// Dir is a directory entry.
func Dir(p string, perm fs.FileMode, uid, gid int) File {
	return File{Path: p, Mode: fs.ModeDir | perm, UID: uid, GID: gid}
}

// HostFile copies the host file src into the image at p.
func HostFile(p, src string, perm fs.FileMode) File { return File{Path: p, Source: src, Mode: perm} }

// TextFile is a regular file with the given contents.
func TextFile(p, data string, perm fs.FileMode) File {
	return File{Path: p, Data: []byte(data), Mode: perm}
}

// Import writes each image as a docker-save archive and imports it into the
// node's containerd, in the Kubernetes namespace the kubelet uses.
func (n *Node) Import(ctx context.Context, images ...Image) error {
	dir, err := os.MkdirTemp(n.Dir, "img")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, img := range images {
		archive := filepath.Join(dir, "image.tar")
		if err := img.WriteArchive(archive); err != nil {
			return fmt.Errorf("kubenode: image %s: %w", img.Name, err)
		}
		out, err := exec.CommandContext(ctx, "ctr", "--address", n.ctrdSock, "-n", "k8s.io",
			"images", "import", "--no-unpack=false", archive).CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubenode: import %s: %v: %s", img.Name, err, out)
		}
		os.Remove(archive)
	}
	return nil
}

// WriteArchive writes img as a docker-save tar at path: one layer, a config
// with its diff_id, manifest.json and repositories.
func (img Image) WriteArchive(path string) error {
	layer, err := os.CreateTemp(filepath.Dir(path), "layer")
	if err != nil {
		return err
	}
	defer os.Remove(layer.Name())
	defer layer.Close()
	h := sha256.New()
	if err := img.writeLayer(io.MultiWriter(layer, h)); err != nil {
		return err
	}
	diffID := hex.EncodeToString(h.Sum(nil))
	size, err := layer.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := layer.Seek(0, io.SeekStart); err != nil {
		return err
	}

	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      created,
		"config": map[string]any{
			"Env":        img.Env,
			"Entrypoint": img.Entrypoint,
			"Cmd":        img.Cmd,
			"User":       img.User,
			"WorkingDir": img.WorkingDir,
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + diffID}},
		"history": []map[string]any{{"created": created, "created_by": "af-builder kubenode"}},
	})
	if err != nil {
		return err
	}
	cfgSum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	repo, tag := splitRef(img.Name)
	manifest, _ := json.Marshal([]map[string]any{{
		"Config":   cfgName,
		"RepoTags": []string{img.Name},
		"Layers":   []string{diffID + "/layer.tar"},
	}})
	repositories, _ := json.Marshal(map[string]map[string]string{repo: {tag: diffID}})

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: created, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: diffID + "/", Mode: 0o755, ModTime: created, Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	if err := add(diffID+"/VERSION", []byte("1.0")); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: diffID + "/layer.tar", Mode: 0o644, Size: size, ModTime: created, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, layer); err != nil {
		return err
	}
	for _, e := range []struct {
		name string
		data []byte
	}{{cfgName, cfg}, {"manifest.json", manifest}, {"repositories", repositories}} {
		if err := add(e.name, e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func splitRef(ref string) (repo, tag string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, "latest"
	}
	return ref[:i], ref[i+1:]
}

// writeLayer writes the files as a layer tar, parents before children and
// every parent directory present, in a stable order.
func (img Image) writeLayer(w io.Writer) error {
	entries := map[string]File{}
	for _, f := range img.Files {
		p := path.Clean("/" + f.Path)
		f.Path = p
		entries[p] = f
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = Dir(d, 0o755, 0, 0)
			}
		}
	}
	names := make([]string, 0, len(entries))
	for p := range entries {
		names = append(names, p)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range names {
		f := entries[p]
		hdr := &tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: int64(f.Mode.Perm()), Uid: f.UID, Gid: f.GID, ModTime: mtime}
		for k, v := range f.Xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
				hdr.Format = tar.FormatPAX
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if f.Mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		if f.Mode&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		switch {
		case f.Mode&fs.ModeDir != 0:
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		case f.Mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, f.Link
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		default:
			data := f.Data
			if f.Source != "" {
				b, err := os.ReadFile(f.Source)
				if err != nil {
					return err
				}
				data = b
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(data))
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

const imagePATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BusyboxFiles is a root filesystem made of the host's static busybox
// (Debian's busybox-static) with every applet linked where busybox installs
// it, /tmp, /root, /run and a passwd/group with root and nobody.
func BusyboxFiles() ([]File, error) {
	bin, err := testinfra.LookPath("/bin/busybox", "busybox-static")
	if err != nil {
		return nil, err
	}
	if dynamic, err := isDynamic(bin); err != nil || dynamic {
		return nil, fmt.Errorf("%s is not a static binary (apt-get install -y busybox-static): %v", bin, err)
	}
	out, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	files := []File{
		HostFile("/bin/busybox", bin, 0o755),
		Dir("/tmp", 0o777|fs.ModeSticky, 0, 0),
		Dir("/root", 0o700, 0, 0),
		Dir("/run", 0o755, 0, 0),
		{Path: "/var/run", Mode: fs.ModeSymlink | 0o777, Link: "/run"},
		TextFile("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", 0o644),
		TextFile("/etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644),
	}
	for _, a := range strings.Fields(string(out)) {
		p := "/" + strings.TrimPrefix(a, "/")
		if p == "/bin/busybox" {
			continue
		}
		files = append(files, File{Path: p, Mode: fs.ModeSymlink | 0o777, Link: "/bin/busybox"})
	}
	return files, nil
}

func isDynamic(bin string) (bool, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true, nil
		}
	}
	return false, nil
}

// pauseImage is the sandbox image: busybox's sh as PID 1, which waits and
// exits on SIGTERM, the one thing a pause container must do.
func pauseImage() (Image, error) {
	files, err := BusyboxFiles()
	if err != nil {
		return Image{}, err
	}
	return Image{
		Name:       PauseImage,
		Files:      files,
		Env:        []string{imagePATH},
		Entrypoint: []string{"/bin/sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait"},
	}, nil
}

// withLibraries adds each binary at its host path, plus every shared
// library `ldd` lists for it (and the dynamic loader), at the path ldd
// names, with the content of the file it resolves to.
func withLibraries(files []File, binaries ...string) ([]File, error) {
	seen := map[string]bool{}
	lib := regexp.MustCompile(`(?:=>\s*)?(/\S+)\s+\(0x`)
	for _, b := range binaries {
		files = append(files, HostFile(b, b, 0o755))
		out, err := exec.Command("ldd", b).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "not a dynamic executable") {
				continue
			}
			return nil, fmt.Errorf("ldd %s: %v: %s", b, err, out)
		}
		for _, m := range lib.FindAllStringSubmatch(string(out), -1) {
			p := m[1]
			if seen[p] {
				continue
			}
			seen[p] = true
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil, err
			}
			files = append(files, HostFile(p, real, 0o755))
		}
	}
	return files, nil
}

// DindImage is a Docker-in-Docker image made from the host's Debian
// docker.io package: busybox plus dockerd, docker, containerd, its runc
// shim, runc and docker-init, with the libraries they link, and the host's
// CA bundle. Like docker:dind it runs whatever the pod's args say; the
// build pod passes "dockerd" and its flags.
func DindImage(name string) (Image, error) {
	files, _, err := busyboxWith(
		hostBinary{"/usr/sbin/dockerd", "docker.io"}, hostBinary{"/usr/bin/docker", "docker.io"},
		hostBinary{"/usr/bin/docker-init", "docker.io"}, hostBinary{"/usr/sbin/docker-proxy", "docker.io"},
		hostBinary{"/usr/bin/containerd", "containerd"}, hostBinary{"/usr/bin/containerd-shim-runc-v2", "containerd"},
		hostBinary{"/usr/sbin/runc", "runc"},
	)
	if err != nil {
		return Image{}, err
	}
	files = append(files, Dir("/var/lib/docker", 0o711, 0, 0))
	if ca, err := caFile(); err == nil {
		files = append(files, ca)
	}
	// No entrypoint script: under the kubelet a privileged container gets
	// its cgroup hierarchies mounted, and nested containers (RUN steps)
	// work with them as they are; remounting them whole (as docker:dind's
	// old script did) breaks runc's cgroup mount for nested containers.
	return Image{Name: name, Files: files, Env: []string{imagePATH}, Cmd: []string{"dockerd"}}, nil
}

// hostBinary is a program of the host that goes into an image, and the
// Debian package that has it.
type hostBinary struct{ path, pkg string }

// busyboxWith is BusyboxFiles plus the host's bins and the libraries they
// link; paths are where each bin was found, in order.
func busyboxWith(bins ...hostBinary) (files []File, paths []string, err error) {
	if files, err = BusyboxFiles(); err != nil {
		return nil, nil, err
	}
	for _, b := range bins {
		p, err := testinfra.LookPath(b.path, b.pkg)
		if err != nil {
			return nil, nil, err
		}
		paths = append(paths, p)
	}
	if files, err = withLibraries(files, paths...); err != nil {
		return nil, nil, err
	}
	return files, paths, nil
}

// caFile is the host's CA bundle at the same path in the image (TLS
// through the machine's intercepting proxy needs its CA).
func caFile() (File, error) {
	const p = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(p); err != nil {
		return File{}, errors.New("no CA bundle at " + p)
	}
	return HostFile(p, p, 0o644), nil
}

// requireStatic refuses a binary that links libraries the image does not
// carry.
func requireStatic(bins ...string) error {
	for _, b := range bins {
		if dynamic, err := isDynamic(b); err != nil || dynamic {
			return fmt.Errorf("%s must be a static binary (CGO_ENABLED=0): %v", b, err)
		}
	}
	return nil
}

// RunnerUID is the runner image's user, as the Dockerfile's final stage
// creates it (useradd --uid 10001 builder).
const RunnerUID = 10001

// RunnerImage mirrors the Dockerfile's final stage with the given binaries:
// the runner at /usr/local/bin/runner as the entrypoint, nixpacks at
// /usr/local/bin/nixpacks (the stand-in, since Nixpacks cannot be had
// here), the CA bundle, user builder (10001:10001, home /home/builder,
// shell nologin) and USER 10001:10001. The Dockerfile's Debian base is
// otherwise absent: the runner is a static binary and uses none of it.
func RunnerImage(name, runnerBin, nixpacksBin string) (Image, error) {
	if err := requireStatic(runnerBin, nixpacksBin); err != nil {
		return Image{}, err
	}
	files := []File{
		HostFile("/usr/local/bin/runner", runnerBin, 0o755),
		HostFile("/usr/local/bin/nixpacks", nixpacksBin, 0o755),
		Dir("/tmp", 0o777|fs.ModeSticky, 0, 0),
		Dir("/root", 0o700, 0, 0),
		Dir("/home/builder", 0o755, RunnerUID, RunnerUID),
		TextFile("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"+
			"builder:x:10001:10001::/home/builder:/usr/sbin/nologin\n", 0o644),
		TextFile("/etc/group", "root:x:0:\nnogroup:x:65534:\nbuilder:x:10001:\n", 0o644),
	}
	ca, err := caFile()
	if err != nil {
		return Image{}, err
	}
	files = append(files, ca)
	return Image{
		Name:       name,
		Files:      files,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		User:       "10001:10001",
		Entrypoint: []string{"/usr/local/bin/runner"},
	}, nil
}

// BuildKitUID is the user of moby/buildkit's rootless images ("user",
// 1000:1000, home /home/user), which they map to root in their own user
// namespace.
const BuildKitUID = 1000

// BuildKitRootlessImage is a stand-in for moby/buildkit:<version>-rootless,
// which cannot be pulled here: the same entrypoint (`rootlesskit buildkitd`),
// user, environment and directories, with the given buildkitd and buildctl
// (built from the module proxy at that version by tools/buildkitd/build.sh)
// in place of the image's, and Debian's rootlesskit, setuid
// newuidmap/newgidmap and runc with the libraries they link in place of
// Alpine's (the ID mappers with file capabilities instead of setuid; see
// below). /etc/subuid and /etc/subgid give user the image's range
// (100000, 65536 IDs).
func BuildKitRootlessImage(name, buildkitd, buildctl string) (Image, error) {
	if err := requireStatic(buildkitd, buildctl); err != nil {
		return Image{}, err
	}
	files, bins, err := busyboxWith(
		hostBinary{"/usr/bin/rootlesskit", "rootlesskit"}, hostBinary{"/usr/bin/newuidmap", "uidmap"},
		hostBinary{"/usr/bin/newgidmap", "uidmap"}, hostBinary{"/usr/sbin/runc", "runc"},
	)
	if err != nil {
		return Image{}, err
	}
	const u = BuildKitUID
	files = append(files,
		// After withLibraries, so that these entries replace its plain
		// ones. newuidmap and newgidmap write the ID maps of the user
		// namespace rootlesskit creates, which an unprivileged user may
		// only do through them. They carry file capabilities (as Fedora
		// ships them), not the setuid bit: Debian 12's setuid newuidmap
		// opens uid_map as root, and the kernel then wants CAP_SYS_ADMIN,
		// which Pod Security baseline does not admit (in the pod:
		// "newuidmap: write to uid_map failed: Operation not permitted").
		// Run as the user with CAP_SETUID (CAP_SETGID) they need nothing
		// else, within the sidecar's SETUID/SETGID bounding set.
		withFileCaps(HostFile(bins[1], bins[1], 0o755), capSetUID),
		withFileCaps(HostFile(bins[2], bins[2], 0o755), capSetGID),
		HostFile("/usr/bin/buildkitd", buildkitd, 0o755),
		HostFile("/usr/bin/buildctl", buildctl, 0o755),
		TextFile("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"+
			"user:x:1000:1000::/home/user:/bin/sh\n", 0o644),
		TextFile("/etc/group", "root:x:0:\nnogroup:x:65534:\nuser:x:1000:\n", 0o644),
		TextFile("/etc/nsswitch.conf", "passwd: files\ngroup: files\n", 0o644),
		TextFile("/etc/subuid", "user:100000:65536\n", 0o644),
		TextFile("/etc/subgid", "user:100000:65536\n", 0o644),
		Dir("/home/user", 0o755, u, u),
		Dir("/home/user/.local", 0o755, u, u),
		Dir("/home/user/.local/tmp", 0o755, u, u),
		Dir("/home/user/.local/share", 0o755, u, u),
		Dir("/home/user/.local/share/buildkit", 0o755, u, u),
		Dir("/run/user", 0o755, 0, 0),
		Dir("/run/user/1000", 0o700, u, u),
	)
	ca, err := caFile()
	if err != nil {
		return Image{}, err
	}
	files = append(files, ca)
	return Image{
		Name:  name,
		Files: files,
		Env: []string{imagePATH, "HOME=/home/user", "USER=user", "XDG_RUNTIME_DIR=/run/user/1000",
			"TMPDIR=/home/user/.local/tmp", "BUILDKIT_HOST=unix:///run/user/1000/buildkit/buildkitd.sock"},
		User:       "1000:1000",
		Entrypoint: []string{"rootlesskit", "buildkitd"},
	}, nil
}

// Capability numbers (linux/capability.h).
const (
	capSetGID = 6
	capSetUID = 7
)

// withFileCaps gives f the file capabilities caps, permitted and effective
// (security.capability, struct vfs_cap_data revision 2).
func withFileCaps(f File, caps ...uint) File {
	var lo, hi uint32
	for _, c := range caps {
		if c < 32 {
			lo |= 1 << c
		} else {
			hi |= 1 << (c - 32)
		}
	}
	const revision2, effective = 0x02000000, 0x1
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], revision2|effective)
	binary.LittleEndian.PutUint32(b[4:], lo)
	binary.LittleEndian.PutUint32(b[12:], hi)
	f.Xattrs = map[string]string{"security.capability": string(b)}
	return f
}
