package kubernetes

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// TestNode is the one setting that exists for tests only: it lets the
// single-node end-to-end suite (internal/e2enode) run build pods on the
// host's network, where its registry, git server and platform API stand-in
// listen on 127.0.0.1. Production leaves it unset; nothing else in the pod
// spec differs between the two.
type TestNode struct {
	// HostNetworkDindPort, when set, puts build pods on the node's network
	// (hostNetwork: true) with dind listening on 127.0.0.1 at this port
	// instead of 2375, so that a build cannot collide with another engine
	// on the same host. Because the pod then shares the node's network
	// namespace, dind is also told to leave it alone (no bridge, no
	// iptables rules) and RUN steps get no network (BUILD_NETWORK=none):
	// the node's loopback carries dind's unauthenticated API.
	//
	// Never set this on a real cluster: a build pod on the host network
	// reaches everything the node reaches.
	HostNetworkDindPort int `env:"K8S_TEST_HOST_NETWORK_DIND_PORT"`
}

// defaultDindPort is where the dind sidecar listens in production.
const defaultDindPort = 2375

func (t TestNode) validate() error {
	if p := t.HostNetworkDindPort; p != 0 && (p < 1024 || p > 65535) {
		return fmt.Errorf("K8S_TEST_HOST_NETWORK_DIND_PORT must be an unprivileged port (1024-65535)")
	}
	return nil
}

// dindAddr is dind's listen address, as both the sidecar and the builder
// see it (the pod's containers share one network namespace).
func (t TestNode) dindAddr() string {
	port := defaultDindPort
	if t.HostNetworkDindPort != 0 {
		port = t.HostNetworkDindPort
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// dockerHost is DOCKER_HOST for the builder; DockerHost in production.
func (t TestNode) dockerHost() string { return "tcp://" + t.dindAddr() }

// buildNetwork is the RUN steps' network: unchanged in production; none on
// the host network, where dind has no bridge and "host" would be the node's.
func (t TestNode) buildNetwork(requested string) string {
	if t.HostNetworkDindPort != 0 {
		return "none"
	}
	return requested
}

// dindArgs are the flags dind needs besides its listen address: none in
// production; on the host network, the ones that keep dockerd from
// creating a bridge and rewriting the node's firewall.
func (t TestNode) dindArgs() []string {
	if t.HostNetworkDindPort == 0 {
		return nil
	}
	return []string{"--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false"}
}

func (t TestNode) apply(spec *corev1.PodSpec) {
	if t.HostNetworkDindPort == 0 {
		return
	}
	spec.HostNetwork = true
	// The node's resolver, not a cluster DNS the single node does not run.
	spec.DNSPolicy = corev1.DNSDefault
}
