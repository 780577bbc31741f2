package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/runner/builder"
	"github.com/alternatefutures/af-builder/runner/failure"
)

// Push uploads req.Tag and returns the manifest digest the registry stored.
// The inline cache goes with it, under req.Cache.Export: pushing the same
// image under a second tag costs one manifest upload, and done after the
// report it rewrote the image's manifest link in the registry while the
// platform pulled the image: Debian's registry writes that file in place,
// and a pull reading it half-written got 500 (the demo did).
func (e *Engine) Push(ctx context.Context, req builder.Request, out io.Writer) (string, error) {
	digest, err := e.push(ctx, req.Tag, req, out)
	if err != nil || req.Cache.Export == "" {
		return digest, err
	}
	if err := e.exportCache(ctx, req); err != nil {
		msg := err.Error()
		if fe := (*failure.Error)(nil); errors.As(err, &fe) {
			msg = fe.Message
		}
		fmt.Fprintf(out, "cache: export to %s failed (the build goes on): %s\n", req.Cache.Export, msg)
	} else {
		fmt.Fprintf(out, "cache: exported to %s (inline cache: the final image's layers only)\n", req.Cache.Export)
	}
	builder.MountsExportFollows(req, out)
	return digest, nil
}

// ExportCache exports the carried cache mounts. The engine's only registry
// cache, the inline one, went with the image in Push.
func (e *Engine) ExportCache(ctx context.Context, req builder.Request, out io.Writer) {
	builder.ExportMounts(ctx, req, e.helperBuild(req), out)
}

func (e *Engine) exportCache(ctx context.Context, req builder.Request) error {
	if _, err := e.cli.ImageTag(ctx, client.ImageTagOptions{Source: req.Tag, Target: req.Cache.Export}); err != nil {
		return err
	}
	// The tag is only a name for the push; the image stays under req.Tag.
	defer func() {
		_, _ = e.cli.ImageRemove(context.WithoutCancel(ctx), req.Cache.Export, client.ImageRemoveOptions{})
	}()
	_, err := e.push(ctx, req.Cache.Export, req, io.Discard)
	return err
}

// push uploads ref. An authentication failure arrives inside the stream,
// not as an HTTP error, and is reported as such.
func (e *Engine) push(ctx context.Context, ref string, req builder.Request, out io.Writer) (string, error) {
	// The engine wants some auth header even for anonymous pushes ("{}").
	auth := "e30="
	if req.RegistryUser != "" && hostOf(ref) == req.RegistryHost {
		b, err := json.Marshal(registry.AuthConfig{Username: req.RegistryUser, Password: req.RegistryToken})
		if err != nil {
			return "", failure.Wrap(failure.Infrastructure, "encode registry credentials", err)
		}
		auth = base64.URLEncoding.EncodeToString(b)
	}
	res, err := e.cli.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		return "", failure.Wrap(failure.Infrastructure, "the Docker engine refused the push", err)
	}
	defer res.Close()
	var digest string
	last := map[string]string{}
	for m, err := range res.JSONMessages(ctx) {
		if err != nil {
			return "", failure.Wrap(failure.Transient, "reading the push progress failed", err)
		}
		if m.Error != nil {
			return "", builder.ClassifyPushError(m.Error.Message)
		}
		if m.Aux != nil {
			var aux struct{ Tag, Digest string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
			continue
		}
		// Print each layer's state changes, not every progress tick.
		if m.Status != "" && last[m.ID] != m.Status {
			last[m.ID] = m.Status
			if m.ID != "" {
				fmt.Fprintf(out, "%s: %s\n", m.ID, m.Status)
			} else {
				fmt.Fprintln(out, m.Status)
			}
		}
	}
	if digest == "" {
		return "", failure.Wrap(failure.Infrastructure, "the registry did not report a digest for the pushed image", nil)
	}
	return digest, nil
}

// hostOf is the registry host of ref, "" when ref does not parse.
func hostOf(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	return reference.Domain(named)
}
