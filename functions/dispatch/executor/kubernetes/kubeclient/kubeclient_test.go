package kubeclient

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/sethvargo/go-envconfig"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/ekstoken"
)

func TestClientModeIsChosenFromWhatIsConfigured(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"K8S_EKS_CLUSTER": "prod"}, ModeEKS},
		{map[string]string{"K8S_KUBECONFIG": "/x"}, ModeKubeconfig},
		{map[string]string{"KUBECONFIG": "/y"}, ModeKubeconfig},
		{map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, ModeInCluster},
		{map[string]string{"K8S_AUTH": "in-cluster", "K8S_EKS_CLUSTER": "prod"}, ModeInCluster},
		{nil, ""},
	} {
		// Read through the lookup dispatch passes, never the process's
		// own environment.
		cfg, err := Load(context.Background(), envconfig.MapLookuper(tc.env))
		if err != nil {
			t.Fatal(err)
		}
		got, err := cfg.mode()
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("%v: mode %q, %v; want %q", tc.env, got, err, tc.want)
		}
	}
	if _, err := Load(context.Background(), envconfig.MapLookuper(map[string]string{"K8S_AUTH": "magic"})); err == nil {
		t.Error("unknown K8S_AUTH accepted")
	}
	if _, err := (Config{Mode: "magic"}).RESTConfig(); err == nil {
		t.Error("unknown K8S_AUTH accepted")
	}
	if _, err := (Config{Mode: ModeEKS}).RESTConfig(); err == nil ||
		!strings.Contains(err.Error(), "K8S_API_SERVER") || !strings.Contains(err.Error(), "K8S_EKS_CLUSTER") {
		t.Errorf("incomplete eks config: %v", err)
	}
}

// fakeEKS is an HTTPS API server that records the bearer tokens it sees.
type fakeEKS struct {
	*httptest.Server
	mu     sync.Mutex
	tokens []string
}

func newFakeEKS(t *testing.T) *fakeEKS {
	f := &fakeEKS{}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.tokens = append(f.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"x","namespace":"af-builds"}}`))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeEKS) clientConfig() Config {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	return Config{
		Mode:       ModeEKS,
		APIServer:  f.URL,
		CAData:     base64.StdEncoding.EncodeToString(ca),
		EKSCluster: "af-prod",
		EKSRegion:  "eu-west-1",
	}
}

// isolateAWS keeps the SDK's default chain away from this machine's files,
// instance metadata and environment.
func isolateAWS(t *testing.T) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE":                        dir + "/config",
		"AWS_SHARED_CREDENTIALS_FILE":            dir + "/credentials",
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_PROFILE":                            "",
		"AWS_ACCESS_KEY_ID":                      "",
		"AWS_SECRET_ACCESS_KEY":                  "",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_ROLE_ARN":                           "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
	} {
		t.Setenv(k, v)
	}
}

func TestEKSModeSendsAPresignedSTSToken(t *testing.T) {
	isolateAWS(t)
	const (
		accessKey = "AKIDEXAMPLE00000000"
		secretKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
		session   = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
	)
	// What Lambda provides: the role's credentials in the environment.
	t.Setenv("AWS_ACCESS_KEY_ID", accessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secretKey)
	t.Setenv("AWS_SESSION_TOKEN", session)

	srv := newFakeEKS(t)
	rc, err := srv.clientConfig().RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	kube, err := k8s.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if i > 0 {
			// Signatures have one-second resolution: a token minted again
			// after this differs, so only a cached one can match.
			time.Sleep(1100 * time.Millisecond)
		}
		if _, err := kube.BatchV1().Jobs("af-builds").Get(context.Background(), "x", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(srv.tokens) != 2 || srv.tokens[0] != srv.tokens[1] {
		t.Fatalf("want one cached token used twice, got %d distinct", len(slices.Compact(slices.Clone(srv.tokens))))
	}
	tok := srv.tokens[0]
	if strings.Contains(tok, secretKey) {
		t.Fatal("the token contains the secret key")
	}
	u := decodeEKSToken(t, tok)
	q := u.Query()
	checks := map[string]bool{
		"https to the regional STS endpoint": u.Scheme == "https" && u.Host == "sts.eu-west-1.amazonaws.com",
		"GetCallerIdentity":                  q.Get("Action") == "GetCallerIdentity" && q.Get("Version") == "2011-06-15",
		"SigV4":                              q.Get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256",
		"the role's key, for sts in region":  strings.HasPrefix(q.Get("X-Amz-Credential"), accessKey+"/") && strings.HasSuffix(q.Get("X-Amz-Credential"), "/eu-west-1/sts/aws4_request"),
		"X-Amz-Expires=60":                   q.Get("X-Amz-Expires") == "60",
		"the cluster header is signed":       slices.Contains(strings.Split(q.Get("X-Amz-SignedHeaders"), ";"), "x-k8s-aws-id"),
		"the session token":                  q.Get("X-Amz-Security-Token") == session,
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("token lacks %s: %s", what, u)
		}
	}
	// STS checks the signature over the cluster header; recompute it with
	// the SDK's signer from the same inputs.
	if want := presignReference(t, u, "af-prod", aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey, SessionToken: session}); q.Get("X-Amz-Signature") != want {
		t.Errorf("signature %s, want %s", q.Get("X-Amz-Signature"), want)
	}
}

func decodeEKSToken(t *testing.T, tok string) *url.URL {
	t.Helper()
	rest, ok := strings.CutPrefix(tok, "k8s-aws-v1.")
	if !ok {
		t.Fatalf("token %.20q... lacks the k8s-aws-v1. prefix", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		t.Fatalf("token is not unpadded base64url: %v", err)
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func presignReference(t *testing.T, signed *url.URL, cluster string, creds aws.Credentials) string {
	t.Helper()
	q := signed.Query()
	at, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		t.Fatal(err)
	}
	unsigned := *signed
	uq := url.Values{}
	for _, k := range []string{"Action", "Version", "X-Amz-Expires"} {
		uq.Set(k, q.Get(k))
	}
	unsigned.RawQuery = uq.Encode()
	req, _ := http.NewRequest(http.MethodGet, unsigned.String(), nil)
	req.Header.Set("x-k8s-aws-id", cluster)
	empty := sha256.Sum256(nil)
	out, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, hex.EncodeToString(empty[:]), "sts", "eu-west-1", at)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := url.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	return ref.Query().Get("X-Amz-Signature")
}

func TestEKSCredentialsAreLoadedOnFirstRequestOnly(t *testing.T) {
	isolateAWS(t)
	// A profile that does not exist: loading the AWS config fails, but
	// only when a token is needed.
	t.Setenv("AWS_PROFILE", "no-such-profile")
	srv := newFakeEKS(t)
	rc, err := srv.clientConfig().RESTConfig()
	if err != nil {
		t.Fatalf("RESTConfig must not touch AWS: %v", err)
	}
	kube, err := k8s.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kube.BatchV1().Jobs("af-builds").Get(context.Background(), "x", metav1.GetOptions{})
	if err == nil || !strings.Contains(err.Error(), "AWS configuration") {
		t.Errorf("first request = %v, want the AWS configuration error", err)
	}
	if len(srv.tokens) != 0 {
		t.Errorf("a request reached the API server without a token")
	}
}

func TestEKSTokenSourceWithExplicitCredentialsAndClock(t *testing.T) {
	isolateAWS(t)
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	ts := &ekstoken.Source{
		Cluster:     "af-staging",
		Region:      "us-east-2",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDSTATIC000000000", "c2VjcmV0", ""),
		Now:         func() time.Time { return at },
	}
	tok, err := ts.TokenContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Expiry.Equal(at.Add(14*time.Minute)) || tok.TokenType != "Bearer" {
		t.Errorf("expiry %s type %s", tok.Expiry, tok.TokenType)
	}
	u := decodeEKSToken(t, tok.AccessToken)
	if got := u.Query().Get("X-Amz-Date"); got != "20260304T050607Z" {
		t.Errorf("signed at %s, want the source's clock", got)
	}
	if u.Host != "sts.us-east-2.amazonaws.com" {
		t.Errorf("host %s", u.Host)
	}
}

// A webhook's answer must not wait in dispatch's own rate limiter: with the
// defaults, 50 pushes arriving together (about four API requests each) pass
// at once, and the sustained rate is well over what one dispatch's
// apiserver round trips can use. (The old 20/40 held 6.7 builds a second.)
func TestDefaultRateLimitHoldsABurstOfFiftyBuilds(t *testing.T) {
	cfg, err := Load(context.Background(), envconfig.MapLookuper(map[string]string{"K8S_KUBECONFIG": "/x"}))
	if err != nil {
		t.Fatal(err)
	}
	const perBuild, burst = 4, 50
	lim := flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	for i := range burst * perBuild {
		if !lim.TryAccept() {
			t.Fatalf("request %d of a burst of %d builds waits in the client's limiter (K8S_QPS=%v K8S_BURST=%d)", i+1, burst, cfg.QPS, cfg.Burst)
		}
	}
	if float64(cfg.QPS) < 100*perBuild {
		t.Errorf("K8S_QPS=%v sustains %v builds/s, want at least 100", cfg.QPS, float64(cfg.QPS)/perBuild)
	}
}
