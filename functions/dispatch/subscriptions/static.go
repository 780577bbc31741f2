package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/alternatefutures/af-builder/shared/validate"
)

// StaticService is one entry of the static file.
type StaticService struct {
	ID string `json:"id"`
	// Repository is owner/name; GitHub compares both case-insensitively.
	Repository string `json:"repository"`
	Branch     string `json:"branch"`
	// InstallationID is required and must match the push's installation.
	// Repository names are not a trust boundary: anyone can install a
	// public App on an account of their own holding a same-named
	// repository (or rename one to match), and without this check their
	// pushes would build into Image with the platform's registry token.
	InstallationID int64 `json:"installationId"`
	// Image is the repository to push to; each build is tagged with the
	// commit's first 12 hex digits.
	Image         string   `json:"image"`
	RootDirectory string   `json:"rootDirectory,omitempty"`
	WatchPaths    []string `json:"watchPaths,omitempty"`
	BuildCommand  string   `json:"buildCommand,omitempty"`
	StartCommand  string   `json:"startCommand,omitempty"`
	Builder       string   `json:"builder,omitempty"`
}

// StaticFile is the file's shape.
type StaticFile struct {
	Services []StaticService `json:"services"`
}

// Static answers from a fixed list.
type Static struct {
	services []StaticService
}

// LoadStatic reads a YAML or JSON file (JSON is YAML) and validates every
// entry, so a mistake shows at start-up rather than on some later push.
func LoadStatic(path string) (*Static, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("subscriptions file: %w", err)
	}
	var f StaticFile
	if err := yaml.UnmarshalStrict(raw, &f); err != nil {
		return nil, fmt.Errorf("subscriptions file %s: %w", path, err)
	}
	return NewStatic(f.Services)
}

// NewStatic validates services and serves them.
func NewStatic(services []StaticService) (*Static, error) {
	var errs []error
	ids := map[string]bool{}
	for i, s := range services {
		if err := s.check(); err != nil {
			errs = append(errs, fmt.Errorf("services[%d]: %w", i, err))
		}
		if ids[s.ID] {
			errs = append(errs, fmt.Errorf("services[%d]: id %q is used twice", i, s.ID))
		}
		ids[s.ID] = true
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("subscriptions: %w", errors.Join(errs...))
	}
	return &Static{services: services}, nil
}

func (s StaticService) check() error {
	owner, name, ok := strings.Cut(s.Repository, "/")
	if !ok || validate.RepoOwner(owner) != nil || validate.RepoName(name) != nil {
		return fmt.Errorf("repository %q must be owner/name", s.Repository)
	}
	if s.InstallationID <= 0 {
		return fmt.Errorf("installationId is required for %q (%s): the id of the GitHub App installation allowed to trigger it, "+
			"so that another account's installation with a same-named repository cannot", s.ID, s.Repository)
	}
	if err := validate.BranchName(s.Branch); err != nil {
		return fmt.Errorf("branch %w", err)
	}
	if strings.Contains(s.Image, "@") || strings.Contains(lastPart(s.Image), ":") {
		return fmt.Errorf("image %q must be a repository without tag or digest", s.Image)
	}
	return s.service(strings.Repeat("0", 40)).Validate()
}

func lastPart(image string) string {
	return image[strings.LastIndex(image, "/")+1:]
}

func (s StaticService) service(commit string) Service {
	return Service{
		ServiceID:     s.ID,
		ImageTag:      s.Image + ":" + commit[:12],
		RootDirectory: s.RootDirectory,
		WatchPaths:    s.WatchPaths,
		BuildCommand:  s.BuildCommand,
		StartCommand:  s.StartCommand,
		Builder:       s.Builder,
	}
}

// Lookup implements Source.
func (s *Static) Lookup(_ context.Context, key PushKey) ([]Service, error) {
	if !validate.IsCommitSHA(key.CommitSHA) {
		return nil, fmt.Errorf("lookup: commit %q is not a full SHA", key.CommitSHA)
	}
	repo := key.RepoOwner + "/" + key.RepoName
	var out []Service
	for _, svc := range s.services {
		if strings.EqualFold(svc.Repository, repo) && svc.Branch == key.Branch &&
			svc.InstallationID == key.InstallationID {
			out = append(out, svc.service(key.CommitSHA))
		}
	}
	return out, nil
}
