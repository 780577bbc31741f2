package baseimage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/internal/testinfra/dockerd"
)

// Import makes each image on the engine at host under its stand-in name
// (Image.Name), building root filesystems that are not cached yet. An image
// already there from the same recipe is left as is, so with a persistent data
// root this costs one inspect per image.
func Import(ctx context.Context, host string, opts Options, imgs ...Image) error {
	c, err := client.New(client.WithHost(host))
	if err != nil {
		return fmt.Errorf("import stand-ins: %w", err)
	}
	defer c.Close()
	if err := Prepare(ctx, opts, imgs...); err != nil {
		return fmt.Errorf("import stand-ins: %w", err)
	}
	for _, img := range imgs {
		if err := importOne(ctx, c, img, opts); err != nil {
			return fmt.Errorf("import stand-in %s: %w", img.Name(), err)
		}
	}
	return nil
}

func importOne(ctx context.Context, c *client.Client, img Image, opts Options) error {
	key, err := RecipeHash(img, opts)
	if err != nil {
		return err
	}
	// The import message becomes the image's Comment: it records the recipe
	// (and says what the image is) without a label, which every image built
	// FROM it would inherit.
	comment := "af-builder local stand-in of " + img.Official + ", recipe " + key
	if got, err := c.ImageInspect(ctx, img.Name()); err == nil && got.Comment == comment {
		return nil
	} else if err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	tarPath, err := Rootfs(ctx, img, opts)
	if err != nil {
		return err
	}
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := c.ImageImport(ctx, client.ImageImportSource{Source: f, SourceName: "-"}, img.Name(),
		client.ImageImportOptions{Changes: img.Changes, Message: comment})
	if err != nil {
		return err
	}
	defer res.Close()
	if err := dockerd.ReadProgress(res); err != nil {
		return err
	}
	got, err := c.ImageInspect(ctx, img.Name())
	if err != nil {
		return fmt.Errorf("inspect after import: %w", err)
	}
	if got.Comment != comment {
		return fmt.Errorf("imported image has comment %q, want %q", got.Comment, comment)
	}
	return nil
}

// Prepare builds the root filesystems of imgs that are not cached yet, at
// the same time: their apt-get runs are mostly waiting on the network.
func Prepare(ctx context.Context, opts Options, imgs ...Image) error {
	errs := make([]error, len(imgs))
	var wg sync.WaitGroup
	for i, img := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Rootfs(ctx, img, opts)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Push copies each stand-in from the engine at host to the registry under
// mirror (e.g. 127.0.0.1:5000/mirror), at the name the templates ask for
// when BASE_IMAGE_MIRROR is mirror. registryAuth is the X-Registry-Auth
// value. For builders without the engine's image store (buildkitd), which
// resolve FROM from a registry only.
func Push(ctx context.Context, host, mirror, registryAuth string, imgs ...Image) error {
	c, err := client.New(client.WithHost(host))
	if err != nil {
		return fmt.Errorf("push stand-ins: %w", err)
	}
	defer c.Close()
	for _, img := range imgs {
		target := img.Ref(mirror)
		if _, err := c.ImageTag(ctx, client.ImageTagOptions{Source: img.Name(), Target: target}); err != nil {
			return fmt.Errorf("push stand-in: tag %s as %s: %w", img.Name(), target, err)
		}
		res, err := c.ImagePush(ctx, target, client.ImagePushOptions{RegistryAuth: registryAuth})
		if err != nil {
			return fmt.Errorf("push stand-in %s: %w", target, err)
		}
		err = res.Wait(ctx)
		res.Close()
		if err != nil {
			return fmt.Errorf("push stand-in %s: %w", target, err)
		}
	}
	return nil
}

// All is every stand-in the templates' tests use: debian, node, python and
// the golang image made from the host's Go tree.
func All() ([]Image, error) {
	goroot, err := HostGoRoot()
	if err != nil {
		return nil, err
	}
	g, err := Go(goroot)
	if err != nil {
		return nil, err
	}
	return []Image{Debian(), Node(), Python(), g}, nil
}
