package buildreq_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
)

// service-cloud-api's spawner input, as its code sends it: a bigint
// installation id as a string, plain multi-line commands, an in-cluster
// plain-http callback base.
func TestServiceCloudAPIsSpawnerInput(t *testing.T) {
	body := `{"buildJobId":"cm9x2k7f30001abcd","installationId":"12345678","repoOwner":"acme","repoName":"web",
	  "commitSha":"` + sha + `","imageTag":"ghcr.io/acme/web:0d1a26e67d8f","rootDirectory":null,
	  "buildCommand":"npm ci\r\nnpm run build","startCommand":"","callbackBaseUrl":"http://service-cloud-api:4000"}`
	req, err := buildreq.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	p := params()
	p.CallbackBaseURL = "http://service-cloud-api:4000"
	if _, err := req.Env(p); err == nil {
		t.Fatal("plain http to a cluster name accepted without CALLBACK_PLAIN_HTTP_HOSTS")
	} else {
		var inv *buildreq.InvalidError
		if !errors.As(err, &inv) || inv.Fields()[0] != "callbackBaseUrl" {
			t.Errorf("error %v, want it on callbackBaseUrl", err)
		}
	}
	p.CallbackPlainHTTPHosts = "service-cloud-api,.svc.cluster.local"
	env, err := req.Env(p)
	if err != nil {
		t.Fatal(err)
	}
	if req.InstallationID != 12345678 || env.BuildCommand != "npm ci\nnpm run build" || env.StartCommand != "" ||
		env.CallbackURL != "http://service-cloud-api:4000/internal/build-callback" ||
		env.CallbackPlainHTTPHosts != p.CallbackPlainHTTPHosts {
		t.Errorf("env = %+v", env)
	}
}

func TestDottedBuildIDsAreRefusedSayingWhy(t *testing.T) {
	r := request()
	r.BuildJobID = "bj.1"
	err := r.Validate(params())
	var inv *buildreq.InvalidError
	if !errors.As(err, &inv) || inv.Fields()[0] != "buildJobId" {
		t.Fatalf("error %v, want it on buildJobId", err)
	}
	b, _ := json.Marshal(inv.Problems)
	if !json.Valid(b) || !strings.Contains(inv.Problems[0].Message, "token") {
		t.Errorf("message %q does not say why", inv.Problems[0].Message)
	}
}
