package kubernetes

import (
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestProductionJobIsNotOnTheHostNetwork(t *testing.T) {
	job, _, err := Render(sampleConfig(), sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	spec := job.Spec.Template.Spec
	if spec.HostNetwork {
		t.Error("production build pod is on the host network")
	}
	if got := envValue(spec.Containers[0].Env, "DOCKER_HOST"); got != DockerHost {
		t.Errorf("DOCKER_HOST = %q, want %q", got, DockerHost)
	}
}

// The single-node suite proves the production path only if its Job is the
// production Job: this pins down that the test setting changes the network
// (and what dind and RUN steps must do about sharing the node's) and
// nothing else.
func TestHostNetworkTestSettingChangesOnlyTheNetwork(t *testing.T) {
	prod := sampleConfig()
	test := sampleConfig()
	test.TestNode.HostNetworkDindPort = 23999

	pj, ps, err := Render(prod, sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	tj, ts, err := Render(test, sampleBuild())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ps, ts) {
		t.Error("the test setting changed the Secret")
	}

	spec := &tj.Spec.Template.Spec
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSDefault {
		t.Errorf("hostNetwork %v, dnsPolicy %q; want true, Default", spec.HostNetwork, spec.DNSPolicy)
	}
	dind, builder := &spec.InitContainers[0], &spec.Containers[0]
	wantArgs := []string{"dockerd", "--host=tcp://127.0.0.1:23999", "--tls=false",
		"--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false"}
	if !slices.Equal(dind.Args, wantArgs) {
		t.Errorf("dind args %q, want %q", dind.Args, wantArgs)
	}
	for _, p := range []*corev1.Probe{dind.ReadinessProbe} {
		if !slices.Contains(p.Exec.Command, "--host=tcp://127.0.0.1:23999") {
			t.Errorf("probe %q does not ask the configured port", p.Exec.Command)
		}
	}
	if got := envValue(builder.Env, "DOCKER_HOST"); got != "tcp://127.0.0.1:23999" {
		t.Errorf("DOCKER_HOST = %q", got)
	}
	if got := envValue(builder.Env, "BUILD_NETWORK"); got != "none" {
		t.Errorf("BUILD_NETWORK = %q, want none (no bridge on the host network)", got)
	}

	// Undo exactly those differences: what remains must be the production Job.
	spec.HostNetwork, spec.DNSPolicy = false, ""
	pspec := pj.Spec.Template.Spec
	pdind, pbuilder := pspec.InitContainers[0], pspec.Containers[0]
	dind.Args = pdind.Args
	dind.ReadinessProbe.Exec.Command = pdind.ReadinessProbe.Exec.Command
	builder.Env = slices.DeleteFunc(builder.Env, func(e corev1.EnvVar) bool {
		return e.Name == "DOCKER_HOST" || e.Name == "BUILD_NETWORK"
	})
	pbuilder.Env = slices.DeleteFunc(pbuilder.Env, func(e corev1.EnvVar) bool {
		return e.Name == "DOCKER_HOST" || e.Name == "BUILD_NETWORK"
	})
	pspec.Containers[0] = pbuilder
	if !reflect.DeepEqual(pj.Spec.Template.Spec, *spec) {
		t.Errorf("the test setting changed more of the pod than its network")
	}
	tj.Spec.Template.Spec = pj.Spec.Template.Spec
	if !reflect.DeepEqual(pj, tj) {
		t.Errorf("the test setting changed the Job outside its pod spec")
	}
}

func TestHostNetworkDindPortMustBeUnprivileged(t *testing.T) {
	c := sampleConfig()
	c.TestNode.HostNetworkDindPort = 80
	if err := c.Validate(); err == nil {
		t.Error("port 80 accepted")
	}
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
