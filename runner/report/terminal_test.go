package report

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/alternatefutures/af-builder/runner/buildlog"
	"github.com/alternatefutures/af-builder/runner/detect"
	"github.com/alternatefutures/af-builder/runner/failure"
	"github.com/alternatefutures/af-builder/runner/pipeline"
	"github.com/alternatefutures/af-builder/shared/callback"
	"github.com/alternatefutures/af-builder/shared/contract"
	"github.com/alternatefutures/af-builder/shared/redact"
)

func TestConfigFailureBlamesTheUserOnlyForTheirOwnSettings(t *testing.T) {
	for _, c := range []struct {
		err  error
		want failure.Class
	}{
		{contract.Errors{{Var: "ROOT_DIRECTORY", Err: errors.New("bad")}, {Var: "BUILD_COMMAND_B64", Err: errors.New("bad")}}, failure.User},
		{contract.Errors{{Var: "ROOT_DIRECTORY", Err: errors.New("bad")}, {Var: "IMAGE_TAG", Err: errors.New("bad")}}, failure.Infrastructure},
		{errors.New("environment could not be read"), failure.Infrastructure},
	} {
		p := ConfigFailure(c.err)
		if p.Status != callback.Failed || p.FailedPhase != "config" || p.ErrorClass != string(c.want) || p.ErrorMessage != c.err.Error() {
			t.Errorf("ConfigFailure(%v) = %+v, want FAILED in config, class %s", c.err, p, c.want)
		}
	}
}

func TestOutcomeOfASuccessCarriesWhatWasBuilt(t *testing.T) {
	port := 8080
	out := pipeline.Outcome{CommitSHA: "abc", ImageDigest: "sha256:1", Detected: detect.Result{Framework: "node", Port: &port}}
	p := Outcome(context.Background(), contract.Env{ImageTag: "reg/x:y"}, out, nil)
	if p.Status != callback.Succeeded || p.ImageTag != "reg/x:y" || p.CommitSHA != "abc" || p.ImageDigest != "sha256:1" ||
		p.DetectedFramework != "node" || p.DetectedPort == nil || *p.DetectedPort != 8080 {
		t.Errorf("Outcome = %+v", p)
	}
}

func TestOutcomeNamesAStopFromOutsideAsTheReason(t *testing.T) {
	leaf := failure.Wrap(failure.User, "RUN step failed", context.Canceled)
	out := pipeline.Outcome{Phase: failure.Build}

	p := Outcome(context.Background(), contract.Env{}, out, leaf)
	if p.FailedPhase != "build" || p.ErrorClass != "user" || p.ErrorMessage != "RUN step failed" {
		t.Errorf("a failure of its own = %+v", p)
	}

	signalled, cancel := context.WithCancelCause(context.Background())
	cancel(ErrSignal)
	p = Outcome(signalled, contract.Env{}, out, leaf)
	if p.FailedPhase != "build" || p.ErrorClass != "infrastructure" || p.ErrorMessage != ErrSignal.Error() {
		t.Errorf("after SIGTERM = %+v", p)
	}

	timedOut, cancel2 := context.WithCancelCause(context.Background())
	cancel2(errors.New("the build did not finish within BUILD_TIMEOUT (1s)"))
	p = Outcome(timedOut, contract.Env{}, out, leaf)
	if p.ErrorClass != "user" || p.ErrorMessage != "the build did not finish within BUILD_TIMEOUT (1s)" {
		t.Errorf("after the build's timeout = %+v", p)
	}
}

func TestFinishMasksSecretsInTheErrorMessage(t *testing.T) {
	sink := startSink(t)
	const secret = "ghs_ErrorMessageSecret0123456789"
	log := buildlog.New(io.Discard, redact.New(secret))
	r := New(callback.New(sink.URL(), sink.Token("job-mask")), "job-mask", log, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Finish(ctx, callback.Payload{Status: callback.Failed, ErrorMessage: "git said: bad token " + secret}); err != nil {
		t.Fatal(err)
	}
	ds := sink.Deliveries("job-mask")
	if len(ds) != 1 || strings.Contains(string(ds[0].Body), secret) || !strings.Contains(ds[0].Payload["errorMessage"].(string), redact.Mask) {
		t.Fatalf("terminal body: %s", ds[0].Body)
	}
}
