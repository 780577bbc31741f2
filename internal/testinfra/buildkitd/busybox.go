package buildkitd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/config/types"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/tonistiigi/fsutil"

	"github.com/alternatefutures/af-builder/internal/testinfra/dockerd"
)

// PushBusybox builds the same busybox base image dockerd.ImportBusybox makes
// (the host's static busybox, every applet linked, root and nobody, PATH set,
// CMD ["/bin/sh"]) on this daemon and pushes it to ref with user/password
// (empty for an anonymous registry). BuildKit pulls FROM images from a
// registry instead of an engine's image store, and nothing can be pulled from
// the internet here, so this is how a test gets its base image there.
func PushBusybox(ctx context.Context, d *Daemon, ref, user, password string) error {
	bin, applets, err := dockerd.Busybox()
	if err != nil {
		return fmt.Errorf("push busybox: %w", err)
	}
	src, err := os.MkdirTemp("", "busybox-rootfs")
	if err != nil {
		return fmt.Errorf("push busybox: %w", err)
	}
	defer os.RemoveAll(src)
	if err := writeRootfs(src, bin, applets); err != nil {
		return fmt.Errorf("push busybox: %w", err)
	}
	fs, err := fsutil.NewFS(src)
	if err != nil {
		return fmt.Errorf("push busybox: %w", err)
	}

	c, err := d.Client(ctx)
	if err != nil {
		return fmt.Errorf("push busybox: %w", err)
	}
	defer c.Close()
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"Cmd": []string{"/bin/sh"},
		},
		"rootfs": map[string]any{"type": "layers"},
	})
	if err != nil {
		return err
	}
	_, err = c.Build(ctx, bkclient.SolveOpt{
		LocalMounts: map[string]fsutil.FS{"rootfs": fs},
		Exports: []bkclient.ExportEntry{{
			Type:  bkclient.ExporterImage,
			Attrs: map[string]string{"name": ref, "push": "true"},
		}},
		Session: []session.Attachable{staticAuth(user, password)},
	}, "", func(ctx context.Context, gw gateway.Client) (*gateway.Result, error) {
		def, err := llb.Scratch().File(llb.Copy(llb.Local("rootfs"), "/", "/", &llb.CopyInfo{
			CopyDirContentsOnly: true,
		})).Marshal(ctx)
		if err != nil {
			return nil, err
		}
		res, err := gw.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true})
		if err != nil {
			return nil, err
		}
		res.AddMeta(exptypes.ExporterImageConfigKey, cfg)
		return res, nil
	}, nil)
	if err != nil {
		return fmt.Errorf("push busybox to %s: %w", ref, err)
	}
	return nil
}

// staticAuth answers every registry with the one test credential.
func staticAuth(user, password string) session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(_ context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			return types.AuthConfig{Username: user, Password: password, ServerAddress: host}, nil
		},
	})
}

func writeRootfs(root string, bin []byte, applets []string) error {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "etc", "root", "home", "var/tmp", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := os.Chmod(filepath.Join(root, d), 0o1777); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), bin, 0o755); err != nil {
		return err
	}
	for _, a := range applets {
		if err := os.Symlink("/bin/busybox", filepath.Join(root, a)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nnogroup:x:65534:\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}
