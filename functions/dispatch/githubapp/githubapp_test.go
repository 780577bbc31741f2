package githubapp_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp"
	"github.com/alternatefutures/af-builder/functions/dispatch/githubapp/githubtest"
)

func newMinter(t *testing.T, gh *githubtest.Server, appID int64, key []byte) *githubapp.Minter {
	t.Helper()
	m, err := githubapp.New(githubapp.Options{AppID: appID, PrivateKey: key, APIURL: gh.URL})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRepoTokenIsScopedToOneRepositoryWithContentsRead(t *testing.T) {
	gh := githubtest.Start(t, 4242)
	gh.AddInstallation(77, "acme", "web", "api")
	m := newMinter(t, gh, gh.AppID, gh.PrivateKeyPEM)

	tok, err := m.RepoToken(context.Background(), 77, "acme", "web")
	if err != nil {
		t.Fatalf("RepoToken: %v (rejections: %v)", err, gh.Rejected())
	}
	if !strings.HasPrefix(tok.Value, "ghs_") || time.Until(tok.ExpiresAt) < 50*time.Minute {
		t.Errorf("token = %q expiring %v", tok.Value, tok.ExpiresAt)
	}
	issued := gh.Issued()
	if len(issued) != 1 || issued[0].InstallationID != 77 ||
		len(issued[0].Repositories) != 1 || issued[0].Repositories[0] != "web" ||
		len(issued[0].Permissions) != 1 || issued[0].Permissions["contents"] != "read" {
		t.Errorf("GitHub saw %+v", issued)
	}
	if strings.Contains(tok.String(), tok.Value) {
		t.Error("Token.String shows the token")
	}
}

func TestJWTSignedWithAnotherKeyIsRefused(t *testing.T) {
	gh := githubtest.Start(t, 4242)
	gh.AddInstallation(77, "acme", "web")
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)})
	m := newMinter(t, gh, gh.AppID, otherPEM)

	if _, err := m.RepoToken(context.Background(), 77, "acme", "web"); err == nil {
		t.Fatal("a JWT signed with the wrong key was accepted")
	}
	if r := gh.Rejected(); len(r) != 1 || r[0].Status != http.StatusUnauthorized || !strings.Contains(r[0].Reason, "could not be decoded") {
		t.Errorf("rejections = %+v", r)
	}
	if len(gh.Issued()) != 0 {
		t.Error("a token was issued")
	}
}

func TestJWTForAnotherAppIsRefused(t *testing.T) {
	gh := githubtest.Start(t, 4242)
	gh.AddInstallation(77, "acme", "web")
	m := newMinter(t, gh, 999, gh.PrivateKeyPEM)

	if _, err := m.RepoToken(context.Background(), 77, "acme", "web"); err == nil {
		t.Fatal("a JWT with the wrong iss was accepted")
	}
	if r := gh.Rejected(); len(r) != 1 || !strings.Contains(r[0].Reason, "Issuer") {
		t.Errorf("rejections = %+v", r)
	}
}

func TestRepositoryOutsideTheInstallationIsNoAccess(t *testing.T) {
	gh := githubtest.Start(t, 4242)
	gh.AddInstallation(77, "acme", "web")
	m := newMinter(t, gh, gh.AppID, gh.PrivateKeyPEM)

	for name, call := range map[string]func() error{
		"other repository":     func() error { _, err := m.RepoToken(context.Background(), 77, "acme", "secret-repo"); return err },
		"unknown installation": func() error { _, err := m.RepoToken(context.Background(), 78, "acme", "web"); return err },
	} {
		err := call()
		if !errors.Is(err, githubapp.ErrNoAccess) {
			t.Errorf("%s: err = %v, want ErrNoAccess", name, err)
		}
	}
}

// GitHub takes the repository's bare name: the installation fixes the
// owner. An installation on another account holding a repository of the
// same name therefore gets a token, for its own repository; only the
// answer's full_name shows it.
func TestInstallationOnAnotherOwnerIsNoAccess(t *testing.T) {
	gh := githubtest.Start(t, 4242)
	gh.AddInstallation(66, "mallory", "shop")
	gh.AddInstallation(77, "acme", "shop")
	m := newMinter(t, gh, gh.AppID, gh.PrivateKeyPEM)

	tok, err := m.RepoToken(context.Background(), 66, "acme", "shop")
	if !errors.Is(err, githubapp.ErrNoAccess) {
		t.Fatalf("RepoToken = %v, %v; want ErrNoAccess", tok, err)
	}
	if !strings.Contains(err.Error(), "installation 66 grants mallory/shop, not acme/shop") {
		t.Errorf("err = %v", err)
	}
	if tok.Value != "" {
		t.Error("the other account's token was returned")
	}

	// The owner is compared as GitHub does, without regard to case.
	if _, err := m.RepoToken(context.Background(), 77, "ACME", "Shop"); err != nil {
		t.Errorf("same repository in another case: %v", err)
	}
}

func TestServerErrorIsNotNoAccess(t *testing.T) {
	gh := githubtest.Start(t, 4242)
	gh.AddInstallation(77, "acme", "web")
	gh.FailNext(http.StatusBadGateway)
	m := newMinter(t, gh, gh.AppID, gh.PrivateKeyPEM)

	_, err := m.RepoToken(context.Background(), 77, "acme", "web")
	if err == nil || errors.Is(err, githubapp.ErrNoAccess) {
		t.Fatalf("err = %v, want a plain failure", err)
	}
}

func TestMalformedPrivateKeyIsRefusedWithoutQuotingIt(t *testing.T) {
	key := []byte("-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END RSA PRIVATE KEY-----\n")
	_, err := githubapp.New(githubapp.Options{AppID: 1, PrivateKey: key, APIURL: "https://api.github.com"})
	if err == nil {
		t.Fatal("accepted a malformed key")
	}
	if strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("error quotes the key: %v", err)
	}
}
