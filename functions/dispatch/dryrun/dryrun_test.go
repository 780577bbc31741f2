package dryrun_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/alternatefutures/af-builder/functions/dispatch/dryrun"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor"
	"github.com/alternatefutures/af-builder/shared/contract"
)

func TestSubmitRendersEachBuildAsADocument(t *testing.T) {
	var out bytes.Buffer
	e := dryrun.New(func(w io.Writer, b executor.Build) (executor.Handle, error) {
		io.WriteString(w, "build: "+b.Env.BuildJobID+"\n")
		return executor.Handle{Name: "afb-" + b.Env.BuildJobID, Namespace: "ns"}, nil
	}, &out)
	for _, id := range []string{"a", "b"} {
		h, err := e.Submit(context.Background(), executor.Build{Env: contract.Env{BuildJobID: id}})
		if err != nil || !h.Created || h.Name != "afb-"+id {
			t.Fatalf("%+v %v", h, err)
		}
	}
	if out.String() != "build: a\n---\nbuild: b\n" {
		t.Errorf("output %q", out.String())
	}
	if err := e.Cancel(context.Background(), "a"); !errors.Is(err, executor.ErrNotFound) {
		t.Errorf("cancel: %v", err)
	}
	if st, _ := e.Status(context.Background(), "a"); st != executor.StateNotFound {
		t.Errorf("status: %v", st)
	}
}
