// Package subscriptions answers which services track a pushed branch: from
// a static file for self-hosting and the local demo (Static), or from
// service-cloud-api (HTTP). Both answer with the builds to start.
package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"github.com/alternatefutures/af-builder/shared/validate"
)

// PushKey identifies a push. It is also the body of the HTTP lookup.
type PushKey struct {
	DeliveryID     string `json:"deliveryId"`
	InstallationID int64  `json:"installationId"`
	RepoOwner      string `json:"repoOwner"`
	RepoName       string `json:"repoName"`
	Branch         string `json:"branch"`
	CommitSHA      string `json:"commitSha"`
}

// Service is one build to start for a push: a service that tracks the
// branch, with what its build needs.
type Service struct {
	ServiceID string `json:"serviceId"`
	// BuildJobID is set by service-cloud-api, which owns BuildJob rows; the
	// static source leaves it empty and dispatch derives one from the
	// delivery, so that a redelivery maps onto the same build.
	BuildJobID    string   `json:"buildJobId,omitempty"`
	ImageTag      string   `json:"imageTag"`
	RootDirectory string   `json:"rootDirectory,omitempty"`
	WatchPaths    []string `json:"watchPaths,omitempty"`
	BuildCommand  string   `json:"buildCommand,omitempty"`
	StartCommand  string   `json:"startCommand,omitempty"`
	// Builder chooses the runner's planner (BUILDER); empty means auto.
	Builder string `json:"builder,omitempty"`
}

// Touches reports whether a push that changed these files concerns the
// service (see the package function Touches).
func (s Service) Touches(changed []string, complete bool) (bool, string) {
	return Touches(changed, complete, s.RootDirectory, s.WatchPaths)
}

// Source looks up the services a push concerns.
type Source interface {
	Lookup(ctx context.Context, key PushKey) ([]Service, error)
}

// Validate checks what can be checked without the rest of the build; the
// full contract is validated again when the build is assembled.
func (s Service) Validate() error {
	var errs []error
	if s.ServiceID == "" {
		errs = append(errs, errors.New("serviceId must be 1-253 printable characters"))
	} else if err := validate.ServiceID(s.ServiceID); err != nil {
		errs = append(errs, fmt.Errorf("serviceId %w", err))
	}
	if s.BuildJobID != "" {
		if err := validate.BuildJobID(s.BuildJobID); err != nil {
			errs = append(errs, fmt.Errorf("buildJobId %w", err))
		}
	}
	if err := validate.ImageTag(s.ImageTag); err != nil {
		errs = append(errs, fmt.Errorf("imageTag %w", err))
	}
	if _, err := validate.RootDirectory(s.RootDirectory); err != nil {
		errs = append(errs, fmt.Errorf("rootDirectory %w", err))
	}
	if err := validate.WatchPaths(s.WatchPaths); err != nil {
		errs = append(errs, err)
	}
	for name, c := range map[string]string{"buildCommand": s.BuildCommand, "startCommand": s.StartCommand} {
		if _, err := validate.Command(c); err != nil {
			errs = append(errs, fmt.Errorf("%s %w", name, err))
		}
	}
	if err := validate.Builder(s.Builder); err != nil {
		errs = append(errs, fmt.Errorf("builder %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("service %q: %w", s.ServiceID, errors.Join(errs...))
	}
	return nil
}
