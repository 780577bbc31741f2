package buildreq_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/alternatefutures/af-builder/functions/dispatch/buildreq"
	"github.com/alternatefutures/af-builder/shared/contract"
)

// A /v1/builds body is the API's (or an attacker's with a stolen key). What
// dispatch accepts, the runner must accept too: the oracle is the runner's
// own loader reading back the variables dispatch would set.
func FuzzDecodeAndValidate(f *testing.F) {
	good, _ := json.Marshal(request())
	f.Add(good)
	f.Add([]byte(`{"buildJobId":"bj-1","installationId":"7","repoOwner":"acme","repoName":"web","commitSha":"main","imageTag":"ghcr.io/a/b:c","callbackBaseUrl":"https://x.example/base?q=1"}`))
	f.Add([]byte(`{"buildJobId":"bj-1","installationId":7,"repoOwner":"acme","repoName":"web","commitSha":"` + sha + `","imageTag":"ghcr.io/a/b:c","buildCommandB64":"bnBtIHJ1bg==","rootDirectory":"../x"}`))
	f.Add([]byte(`{"installationId":1e99}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := buildreq.Decode(body)
		if err != nil {
			return
		}
		verr := req.Validate(params())
		env, err := req.Env(params())
		if (verr == nil) != (err == nil) {
			t.Fatalf("Validate says %v, Env says %v", verr, err)
		}
		if err != nil {
			return
		}
		if !strings.HasSuffix(env.CallbackURL, buildreq.CallbackPath) {
			t.Fatalf("callback URL %q does not end in %s", env.CallbackURL, buildreq.CallbackPath)
		}
		vars := map[string]string{}
		for _, v := range env.Vars() {
			vars[v.Name] = v.Value
		}
		back, err := contract.Load(context.Background(), envconfig.MapLookuper(vars))
		if err != nil {
			t.Fatalf("dispatch accepted %s, the runner refuses its contract: %v", body, err)
		}
		if back.BuildJobID != env.BuildJobID || back.RepoRef != env.RepoRef || back.ImageTag != env.ImageTag ||
			back.RootDirectory != env.RootDirectory || back.BuildCommand != env.BuildCommand || back.StartCommand != env.StartCommand {
			t.Fatalf("the runner reads back %+v, dispatch meant %+v", back, env)
		}
	})
}
