package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DecodeManifests reads a multi-document YAML file into typed objects (the
// client-go scheme's kinds), so tests can inspect and adjust them (rename a
// namespace) before creating them. Unknown kinds fail the test.
func DecodeManifests(t testing.TB, path string) []client.Object {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	objs, err := decodeManifests(raw)
	if err != nil {
		t.Fatalf("kubetest: %s: %v", path, err)
	}
	return objs
}

func decodeManifests(raw []byte) ([]client.Object, error) {
	reader := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	decode := scheme.Codecs.UniversalDeserializer().Decode
	var objs []client.Object
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		co, ok := obj.(client.Object)
		if !ok {
			return nil, fmt.Errorf("document %d: %T is not an object", i, obj)
		}
		objs = append(objs, co)
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

// Create creates objs as the administrator, in order.
func (e *Env) Create(t testing.TB, objs ...client.Object) {
	t.Helper()
	for _, obj := range objs {
		if err := e.Client.Create(context.Background(), obj); err != nil {
			t.Fatalf("kubetest: create %T %s/%s: %v", obj, obj.GetNamespace(), obj.GetName(), err)
		}
	}
}
