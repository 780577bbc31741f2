package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"runtime"
	"strings"
)

// Media types a manifest GET accepts, in the order a modern client sends
// them: without them distribution 2.8 falls back to schema 1 or 404s.
const (
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
)

const (
	acceptManifests     = MediaTypeOCIIndex + ", " + MediaTypeOCIManifest + ", " + MediaTypeDockerList + ", " + MediaTypeDockerManifest
	maxManifestBytes    = 4 << 20
	maxConfigBytes      = 8 << 20
	maxLayerBytes       = 1 << 30
	dockerContentDigest = "Docker-Content-Digest"
)

// ErrNotFound is returned (wrapped) when the repository, tag or blob does not
// exist, so a test can assert that nothing was pushed.
var ErrNotFound = errors.New("not found in registry")

// Manifest is a manifest or index as stored.
type Manifest struct {
	MediaType string
	// Digest is the registry's Docker-Content-Digest (sha256 of Body).
	Digest string
	Body   []byte
}

// ImageConfig is the part of an image's config blob that tests assert on.
type ImageConfig struct {
	Architecture string
	OS           string
	User         string
	ExposedPorts map[string]struct{}
	Env          []string
	Entrypoint   []string
	Cmd          []string
	WorkingDir   string
	Labels       map[string]string
	// ManifestDigest is the platform manifest the config was reached
	// through (the index's entry when the tag names an index).
	ManifestDigest string
	// ConfigDigest is the config blob's digest, i.e. the image id.
	ConfigDigest string
	// Raw is the whole config blob.
	Raw []byte
}

// ManifestDigest returns the Docker-Content-Digest of repo:tag (a HEAD
// request, as `docker buildx imagetools` or crane would), e.g. to compare
// with the digest a build reported. The digest is of whatever the tag names:
// an index if one was pushed, otherwise the image manifest.
func (r *Registry) ManifestDigest(ctx context.Context, repo, tag string) (string, error) {
	resp, err := r.do(ctx, http.MethodHead, "/v2/"+repo+"/manifests/"+tag, acceptManifests)
	if err != nil {
		return "", fmt.Errorf("manifest digest %s:%s: %w", repo, tag, err)
	}
	resp.Body.Close()
	if d := resp.Header.Get(dockerContentDigest); d != "" {
		return d, nil
	}
	m, err := r.Manifest(ctx, repo, tag)
	if err != nil {
		return "", err
	}
	return m.Digest, nil
}

// Manifest fetches the manifest repo:ref (a tag or a digest). A manifest
// fetched by digest is checked against it.
func (r *Registry) Manifest(ctx context.Context, repo, ref string) (Manifest, error) {
	resp, err := r.do(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, acceptManifests)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest %s:%s: %w", repo, ref, err)
	}
	defer resp.Body.Close()
	body, err := readAll(resp.Body, maxManifestBytes)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest %s:%s: %w", repo, ref, err)
	}
	sum := sha256.Sum256(body)
	computed := "sha256:" + hex.EncodeToString(sum[:])
	if strings.HasPrefix(ref, "sha256:") && ref != computed {
		return Manifest{}, fmt.Errorf("manifest %s@%s: body hashes to %s", repo, ref, computed)
	}
	m := Manifest{MediaType: resp.Header.Get("Content-Type"), Digest: resp.Header.Get(dockerContentDigest), Body: body}
	if m.Digest == "" {
		m.Digest = computed
	}
	// The body's own mediaType is authoritative; Content-Type is only a
	// fallback for manifests that omit it.
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(body, &probe) == nil && probe.MediaType != "" {
		m.MediaType = probe.MediaType
	}
	return m, nil
}

// ImageConfig follows repo:tag to its config blob: through an index (picking
// linux on this machine's architecture, as a daemon pulling here would) to
// the image manifest, and from there to the config.
func (r *Registry) ImageConfig(ctx context.Context, repo, tag string) (*ImageConfig, error) {
	m, man, err := r.imageManifest(ctx, repo, tag)
	if err != nil {
		return nil, fmt.Errorf("image config %s:%s: %w", repo, tag, err)
	}
	if man.Config.Digest == "" {
		return nil, fmt.Errorf("image config %s:%s: manifest %s (%s) has no config", repo, tag, m.Digest, m.MediaType)
	}
	raw, err := r.Blob(ctx, repo, man.Config.Digest, maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("image config %s:%s: %w", repo, tag, err)
	}
	var cf struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Config       struct {
			User         string              `json:"User"`
			ExposedPorts map[string]struct{} `json:"ExposedPorts"`
			Env          []string            `json:"Env"`
			Entrypoint   []string            `json:"Entrypoint"`
			Cmd          []string            `json:"Cmd"`
			WorkingDir   string              `json:"WorkingDir"`
			Labels       map[string]string   `json:"Labels"`
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &cf); err != nil {
		return nil, fmt.Errorf("image config %s:%s: decode %s: %w", repo, tag, man.Config.Digest, err)
	}
	return &ImageConfig{
		Architecture:   cf.Architecture,
		OS:             cf.OS,
		User:           cf.Config.User,
		ExposedPorts:   cf.Config.ExposedPorts,
		Env:            cf.Config.Env,
		Entrypoint:     cf.Config.Entrypoint,
		Cmd:            cf.Config.Cmd,
		WorkingDir:     cf.Config.WorkingDir,
		Labels:         cf.Config.Labels,
		ManifestDigest: m.Digest,
		ConfigDigest:   man.Config.Digest,
		Raw:            raw,
	}, nil
}

// imageManifest follows repo:ref through an index (picking linux on this
// machine's architecture, as a daemon pulling here would) to the image
// manifest.
func (r *Registry) imageManifest(ctx context.Context, repo, ref string) (Manifest, imageManifest, error) {
	m, err := r.Manifest(ctx, repo, ref)
	if err != nil {
		return Manifest{}, imageManifest{}, err
	}
	if m.MediaType == MediaTypeOCIIndex || m.MediaType == MediaTypeDockerList {
		d, err := pickPlatform(m.Body, "linux", runtime.GOARCH)
		if err != nil {
			return Manifest{}, imageManifest{}, err
		}
		if m, err = r.Manifest(ctx, repo, d); err != nil {
			return Manifest{}, imageManifest{}, err
		}
	}
	var man imageManifest
	if err := json.Unmarshal(m.Body, &man); err != nil {
		return Manifest{}, imageManifest{}, fmt.Errorf("manifest %s (%s): %w", m.Digest, m.MediaType, err)
	}
	return m, man, nil
}

type imageManifest struct {
	Config struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
	} `json:"layers"`
}

// ImageFiles is the file system of repo:tag as a container would see it,
// by the tar headers of its layers (the topmost one of each path, named
// without a leading "/" or trailing "/"): owners and modes, as the image's
// users get them. Whiteouts are not applied; the images tests build here
// delete nothing.
func (r *Registry) ImageFiles(ctx context.Context, repo, tag string) (map[string]*tar.Header, error) {
	_, man, err := r.imageManifest(ctx, repo, tag)
	if err != nil {
		return nil, fmt.Errorf("image files %s:%s: %w", repo, tag, err)
	}
	files := map[string]*tar.Header{}
	for _, l := range man.Layers {
		blob, err := r.Blob(ctx, repo, l.Digest, maxLayerBytes)
		if err != nil {
			return nil, fmt.Errorf("image files %s:%s: %w", repo, tag, err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(blob))
		if err != nil {
			return nil, fmt.Errorf("image files %s:%s: layer %s (%s): %w", repo, tag, l.Digest, l.MediaType, err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("image files %s:%s: layer %s: %w", repo, tag, l.Digest, err)
			}
			files[strings.Trim(path.Clean("/"+h.Name), "/")] = h
		}
	}
	return files, nil
}

// Blob fetches a blob (at most max bytes) and checks it against its digest.
func (r *Registry) Blob(ctx context.Context, repo, digest string, max int64) ([]byte, error) {
	resp, err := r.do(ctx, http.MethodGet, "/v2/"+repo+"/blobs/"+digest, "")
	if err != nil {
		return nil, fmt.Errorf("blob %s@%s: %w", repo, digest, err)
	}
	defer resp.Body.Close()
	b, err := readAll(resp.Body, max)
	if err != nil {
		return nil, fmt.Errorf("blob %s@%s: %w", repo, digest, err)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return nil, fmt.Errorf("blob %s@%s: content hashes to %s", repo, digest, got)
	}
	return b, nil
}

// Tags lists the tags of repo.
func (r *Registry) Tags(ctx context.Context, repo string) ([]string, error) {
	resp, err := r.do(ctx, http.MethodGet, "/v2/"+repo+"/tags/list", "")
	if err != nil {
		return nil, fmt.Errorf("tags %s: %w", repo, err)
	}
	defer resp.Body.Close()
	var tl struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxManifestBytes)).Decode(&tl); err != nil {
		return nil, fmt.Errorf("tags %s: %w", repo, err)
	}
	return tl.Tags, nil
}

func pickPlatform(index []byte, os, arch string) (string, error) {
	var idx struct {
		Manifests []struct {
			Digest   string `json:"digest"`
			Platform *struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
			} `json:"platform"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(index, &idx); err != nil {
		return "", fmt.Errorf("decode index: %w", err)
	}
	var seen []string
	for _, m := range idx.Manifests {
		// Attestation manifests carry platform unknown/unknown.
		if m.Platform == nil {
			continue
		}
		if m.Platform.OS == os && m.Platform.Architecture == arch {
			return m.Digest, nil
		}
		seen = append(seen, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	return "", fmt.Errorf("index has no %s/%s manifest (has %v)", os, arch, seen)
}

// do sends an authenticated request and turns non-2xx answers into errors
// (wrapping ErrNotFound for 404).
func (r *Registry) do(ctx context.Context, method, path, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.URL()+path, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(r.user, r.password)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w: %s %s: %s", ErrNotFound, method, path, strings.TrimSpace(string(body)))
	}
	return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
}

func readAll(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("more than %d bytes", max)
	}
	return b, nil
}
