// Package githubtest is a stand-in for the part of GitHub's REST API that
// dispatch uses: POST /app/installations/{id}/access_tokens. It checks what
// GitHub checks — an RS256 App JWT verified with the App's public key, with
// iss = the App id and a lifetime of at most ten minutes — and what dispatch
// promises on top: exactly one repository, exactly contents: read.
package githubtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

// Issued records one token the server handed out.
type Issued struct {
	InstallationID int64
	Repositories   []string
	Permissions    map[string]string
	Token          string
}

// Rejected records one refused request and why.
type Rejected struct {
	Status int
	Reason string
}

// Server is a running fake GitHub API.
type Server struct {
	// URL is the API base URL (GITHUB_API_URL).
	URL   string
	AppID int64
	// PrivateKeyPEM is the App's key (PKCS#1), as GitHub hands it out.
	PrivateKeyPEM []byte

	pub *rsa.PublicKey
	srv *httptest.Server

	mu            sync.Mutex
	installations map[int64]installation
	issued        []Issued
	rejected      []Rejected
	failNext      []int
	delay         time.Duration
	onIssue       func(Issued)
}

type installation struct {
	owner string
	repos map[string]bool
}

var (
	keyOnce sync.Once
	key     *rsa.PrivateKey
	keyErr  error
)

// appKey is generated once per test binary: 2048-bit generation is slow
// under -race, and every test's fake App may share it.
func appKey() (*rsa.PrivateKey, error) {
	keyOnce.Do(func() { key, keyErr = rsa.GenerateKey(rand.Reader, 2048) })
	return key, keyErr
}

// Start runs the server until the test ends.
func Start(t testing.TB, appID int64) *Server {
	t.Helper()
	s, err := New(appID)
	if err != nil {
		t.Fatalf("githubtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New runs the server until Close; for programs (the demo) rather than tests.
func New(appID int64) (*Server, error) {
	k, err := appKey()
	if err != nil {
		return nil, fmt.Errorf("generate App key: %w", err)
	}
	s := &Server{
		AppID:         appID,
		PrivateKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}),
		pub:           &k.PublicKey,
		installations: map[int64]installation{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", s.accessTokens)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.reject(w, http.StatusNotFound, "no such endpoint in the fake: "+r.Method+" "+r.URL.Path)
	})
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// OnIssue calls fn with every token before it is handed out, so a git server
// standing in for github.com can accept it by the time it is used.
func (s *Server) OnIssue(fn func(Issued)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onIssue = fn
}

// AddInstallation makes the App installed on owner with access to repos.
func (s *Server) AddInstallation(id int64, owner string, repos ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := installation{owner: owner, repos: map[string]bool{}}
	for _, r := range repos {
		in.repos[strings.ToLower(r)] = true
	}
	s.installations[id] = in
}

// FailNext makes the next len(codes) token requests answer with those
// status codes, after authentication.
func (s *Server) FailNext(codes ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = append(s.failNext, codes...)
}

// Delay makes every answer wait d, to exercise callers' deadlines.
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Issued returns the tokens handed out so far.
func (s *Server) Issued() []Issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Issued(nil), s.issued...)
}

// Rejected returns the requests refused so far.
func (s *Server) Rejected() []Rejected {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rejected(nil), s.rejected...)
}

// Tokens returns every token value issued, for tests that scan output.
func (s *Server) Tokens() []string {
	var out []string
	for _, i := range s.Issued() {
		out = append(out, i.Token)
	}
	return out
}

func (s *Server) accessTokens(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}

	if reason := s.checkJWT(r.Header.Get("Authorization")); reason != "" {
		s.reject(w, http.StatusUnauthorized, reason)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.reject(w, http.StatusNotFound, "Not Found")
		return
	}
	var body struct {
		Repositories  []string          `json:"repositories"`
		RepositoryIDs []int64           `json:"repository_ids"`
		Permissions   map[string]string `json:"permissions"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		s.reject(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}

	s.mu.Lock()
	in, known := s.installations[id]
	var fail int
	if len(s.failNext) > 0 {
		fail, s.failNext = s.failNext[0], s.failNext[1:]
	}
	s.mu.Unlock()

	switch {
	case fail != 0:
		s.reject(w, fail, "scripted failure")
		return
	case !known:
		s.reject(w, http.StatusNotFound, "Not Found")
		return
	case len(body.RepositoryIDs) > 0 || len(body.Repositories) != 1:
		// GitHub would accept this; dispatch must never ask for it.
		s.reject(w, http.StatusUnprocessableEntity, fmt.Sprintf("dispatch must scope each token to exactly one repository by name, asked for %v %v", body.Repositories, body.RepositoryIDs))
		return
	case strings.Contains(body.Repositories[0], "/"):
		s.reject(w, http.StatusUnprocessableEntity, "repositories takes names without the owner")
		return
	case !in.repos[strings.ToLower(body.Repositories[0])]:
		s.reject(w, http.StatusUnprocessableEntity, "There is at least one repository that does not exist or is not accessible to the parent installation.")
		return
	case !reflect.DeepEqual(body.Permissions, map[string]string{"contents": "read"}):
		s.reject(w, http.StatusUnprocessableEntity, fmt.Sprintf("dispatch must ask for exactly contents: read, asked for %v", body.Permissions))
		return
	}

	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		s.reject(w, http.StatusInternalServerError, "rand")
		return
	}
	tok := "ghs_" + hex.EncodeToString(raw)
	repo := body.Repositories[0]
	issued := Issued{InstallationID: id, Repositories: []string{repo}, Permissions: body.Permissions, Token: tok}
	s.mu.Lock()
	s.issued = append(s.issued, issued)
	onIssue := s.onIssue
	s.mu.Unlock()
	if onIssue != nil {
		onIssue(issued)
	}

	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"token":                tok,
		"expires_at":           time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"permissions":          body.Permissions,
		"repository_selection": "selected",
		"repositories":         []map[string]any{{"name": repo, "full_name": in.owner + "/" + repo}},
	})
}

// checkJWT returns why the App JWT is unacceptable, or "".
func (s *Server) checkJWT(header string) string {
	raw, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return "A JSON web token could not be decoded: no bearer token"
	}
	var claims jwt.RegisteredClaims
	// Claims are checked below, by GitHub's rules rather than the library's.
	p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	if _, err := p.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return s.pub, nil }); err != nil {
		return "A JSON web token could not be decoded: " + err.Error()
	}
	now := time.Now()
	switch {
	case claims.Issuer != strconv.FormatInt(s.AppID, 10):
		return fmt.Sprintf("'Issuer' claim ('iss') must be the App id %d, got %q", s.AppID, claims.Issuer)
	case claims.IssuedAt == nil || claims.ExpiresAt == nil:
		return "'iat' and 'exp' are required"
	case claims.IssuedAt.After(now.Add(60 * time.Second)):
		return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
	case !claims.ExpiresAt.After(now):
		return "'Expiration time' claim ('exp') is in the past"
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute:
		return "'Expiration time' claim ('exp') is too far in the future"
	}
	return ""
}

func (s *Server) reject(w http.ResponseWriter, code int, reason string) {
	s.mu.Lock()
	s.rejected = append(s.rejected, Rejected{Status: code, Reason: reason})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{
		"message":           reason,
		"documentation_url": "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app",
	})
}
