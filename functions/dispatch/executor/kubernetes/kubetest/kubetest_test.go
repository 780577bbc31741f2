package kubetest_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func TestServiceAccountConfigAuthenticatesAsTheServiceAccount(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	sa, err := k8s.NewForConfig(env.ServiceAccountConfig(t, ns, "robot"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	review, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "system:serviceaccount:" + ns + ":robot"; review.Status.UserInfo.Username != want {
		t.Errorf("authenticated as %q, want %q", review.Status.UserInfo.Username, want)
	}
	// RBAC is enforced: with no binding, the ServiceAccount may read nothing.
	if _, err := sa.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("unbound ServiceAccount listed configmaps: %v", err)
	}
}

func TestWriteKubeconfigRoundTrips(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	path := kubetest.WriteKubeconfig(t, env.ServiceAccountConfig(t, ns, "robot"))
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	kube, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	review, err := kube.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if review.Status.UserInfo.Username != "system:serviceaccount:"+ns+":robot" {
		t.Errorf("kubeconfig authenticates as %q", review.Status.UserInfo.Username)
	}
}

func TestNamespacesAreFreshPerTest(t *testing.T) {
	t.Parallel()
	env := kubetest.Start(t)
	a, b := env.Namespace(t), env.Namespace(t)
	if a == b {
		t.Fatalf("two namespaces named %s", a)
	}
	if !regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`).MatchString(a) || len(a) > 63 {
		t.Errorf("%q is not a namespace name", a)
	}
	if _, err := env.Kube.CoreV1().Namespaces().Get(context.Background(), a, metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
}

func TestDecodeManifestsGivesTypedObjects(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "m.yaml")
	err := os.WriteFile(path, []byte(`# leading comment
apiVersion: v1
kind: ServiceAccount
metadata: {name: a, namespace: x}
---
# a document of comments only
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r, namespace: x}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	objs := kubetest.DecodeManifests(t, path)
	if len(objs) != 2 {
		t.Fatalf("got %d objects", len(objs))
	}
	if _, ok := objs[0].(*corev1.ServiceAccount); !ok {
		t.Errorf("first is %T", objs[0])
	}
	if r, ok := objs[1].(*rbacv1.Role); !ok || r.Rules[0].Verbs[0] != "get" {
		t.Errorf("second is %T %+v", objs[1], objs[1])
	}
}
