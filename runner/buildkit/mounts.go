package buildkit

import (
	"context"
	"io"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	"github.com/tonistiigi/fsutil"

	"github.com/alternatefutures/af-builder/runner/builder"
)

// helperBuild is builder.HelperBuild on buildkitd: a solve of its own,
// outside the build's, which shows only what the helper's step prints.
func (b *Builder) helperBuild(req builder.Request) builder.HelperBuild {
	return func(ctx context.Context, dockerfile, pushTo string, out io.Writer) error {
		dfFS, remove, err := builder.HelperContext(dockerfile)
		if err != nil {
			return err
		}
		defer remove()
		nonce, value := builder.HelperNonce(req)
		attrs := map[string]string{
			"filename":           "Dockerfile",
			"force-network-mode": "none",
			"build-arg:" + nonce: value,
		}
		if req.Platform != "" {
			attrs["platform"] = req.Platform
		}
		opt := bkclient.SolveOpt{
			Frontend:      "dockerfile.v0",
			FrontendAttrs: attrs,
			LocalMounts:   map[string]fsutil.FS{"context": dfFS, "dockerfile": dfFS},
			Session:       []session.Attachable{authProvider(req)},
		}
		if pushTo != "" {
			opt.Exports = []bkclient.ExportEntry{{
				Type: bkclient.ExporterImage,
				Attrs: map[string]string{
					"name":           pushTo,
					"push":           "true",
					"oci-mediatypes": "false",
					// Made once, read once by the next new builder: the
					// fastest gzip, as for the registry cache.
					"compression":       "gzip",
					"compression-level": "1",
				},
			}}
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
}
