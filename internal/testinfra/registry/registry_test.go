package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"
)

func TestRegistry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	r, err := Start(ctx, Options{User: "pusher", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("registry ready in %s at %s", time.Since(t0).Round(time.Millisecond), r.Addr())
	dir := r.dir
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("temp dir %s left behind", dir)
		}
	})

	t.Run("auth", func(t *testing.T) {
		for _, tc := range []struct {
			user, pass string
			want       int
		}{{"pusher", "s3cret", 200}, {"pusher", "wrong", 401}, {"other", "s3cret", 401}, {"", "", 401}} {
			req, _ := http.NewRequestWithContext(ctx, "GET", r.URL()+"/v2/", nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s:%s -> %d, want %d", tc.user, tc.pass, resp.StatusCode, tc.want)
			}
		}
	})

	// A real push over the registry API: config and layer blobs, an image
	// manifest, and an OCI index over it with an attestation-like entry.
	cfg := []byte(`{"architecture":"` + runtime.GOARCH + `","os":"linux","config":{"User":"nobody","ExposedPorts":{"8080/tcp":{}},` +
		`"Env":["PATH=/bin","PORT=8080"],"Entrypoint":["/bin/sh","-c"],"Cmd":["httpd -f"],"WorkingDir":"/app",` +
		`"Labels":{"org.opencontainers.image.source":"https://github.com/o/r"}},"rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("not really a tarball, the registry does not care")
	cfgDigest := push(ctx, t, r, "o/app", cfg)
	layerDigest := push(ctx, t, r, "o/app", layer)
	man := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeDockerManifest,
		"config":        map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(cfg), "digest": cfgDigest},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer), "digest": layerDigest}},
	})
	manDigest := putManifest(ctx, t, r, "o/app", "v1", MediaTypeDockerManifest, man)
	idx := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeOCIIndex,
		"manifests": []any{
			map[string]any{"mediaType": MediaTypeDockerManifest, "size": len(man), "digest": manDigest, "platform": map[string]string{"os": "linux", "architecture": "s390x"}},
			map[string]any{"mediaType": MediaTypeDockerManifest, "size": len(man), "digest": manDigest, "platform": map[string]string{"os": "linux", "architecture": runtime.GOARCH}},
			map[string]any{"mediaType": MediaTypeDockerManifest, "size": len(man), "digest": manDigest, "platform": map[string]string{"os": "unknown", "architecture": "unknown"}},
		},
	})
	idxDigest := putManifest(ctx, t, r, "o/app", "multi", MediaTypeOCIIndex, idx)

	t.Run("ManifestDigest", func(t *testing.T) {
		if d, err := r.ManifestDigest(ctx, "o/app", "v1"); err != nil || d != manDigest {
			t.Errorf("v1: %q, %v; want %s", d, err, manDigest)
		}
		if d, err := r.ManifestDigest(ctx, "o/app", "multi"); err != nil || d != idxDigest {
			t.Errorf("multi: %q, %v; want %s", d, err, idxDigest)
		}
		if _, err := r.ManifestDigest(ctx, "o/app", "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing tag: %v, want ErrNotFound", err)
		}
		if _, err := r.ManifestDigest(ctx, "o/none", "v1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing repo: %v, want ErrNotFound", err)
		}
	})

	t.Run("ImageConfig", func(t *testing.T) {
		for _, tag := range []string{"v1", "multi"} {
			ic, err := r.ImageConfig(ctx, "o/app", tag)
			if err != nil {
				t.Fatal(err)
			}
			if ic.User != "nobody" || ic.WorkingDir != "/app" || ic.OS != "linux" ||
				!slices.Equal(ic.Cmd, []string{"httpd -f"}) || !slices.Equal(ic.Entrypoint, []string{"/bin/sh", "-c"}) ||
				!slices.Equal(ic.Env, []string{"PATH=/bin", "PORT=8080"}) ||
				ic.Labels["org.opencontainers.image.source"] != "https://github.com/o/r" {
				t.Errorf("%s: %+v", tag, ic)
			}
			if _, ok := ic.ExposedPorts["8080/tcp"]; !ok {
				t.Errorf("%s: ExposedPorts %v", tag, ic.ExposedPorts)
			}
			if ic.ManifestDigest != manDigest || ic.ConfigDigest != cfgDigest {
				t.Errorf("%s: digests %s %s", tag, ic.ManifestDigest, ic.ConfigDigest)
			}
		}
	})

	t.Run("Tags", func(t *testing.T) {
		tags, err := r.Tags(ctx, "o/app")
		slices.Sort(tags)
		if err != nil || !slices.Equal(tags, []string{"multi", "v1"}) {
			t.Errorf("Tags = %v, %v", tags, err)
		}
	})
}

func TestStartBadStorage(t *testing.T) {
	// A storage dir that is a file: MkdirAll fails before anything starts.
	f := t.TempDir() + "/file"
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), Options{Dir: f + "/x"}); err == nil {
		t.Fatal("Start succeeded with storage under a file")
	}
}

func push(ctx context.Context, t *testing.T, r *Registry, repo string, blob []byte) string {
	t.Helper()
	sum := sha256.Sum256(blob)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	resp := send(ctx, t, r, "POST", r.URL()+"/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	u := resp.Request.URL.ResolveReference(loc)
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	send(ctx, t, r, "PUT", u.String(), "application/octet-stream", blob, http.StatusCreated)
	return digest
}

func putManifest(ctx context.Context, t *testing.T, r *Registry, repo, tag, mediaType string, body []byte) string {
	t.Helper()
	resp := send(ctx, t, r, "PUT", r.URL()+"/v2/"+repo+"/manifests/"+tag, mediaType, body, http.StatusCreated)
	sum := sha256.Sum256(body)
	want := "sha256:" + hex.EncodeToString(sum[:])
	if got := resp.Header.Get("Docker-Content-Digest"); got != want {
		t.Fatalf("manifest digest %s, want %s", got, want)
	}
	return want
}

func send(ctx context.Context, t *testing.T, r *Registry, method, u, ctype string, body []byte, want int) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	req.SetBasicAuth(r.User(), r.Password())
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d", method, u, resp.Status, want)
	}
	return resp
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
