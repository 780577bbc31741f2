// Package e2enode proves the production path on a real Kubernetes node:
// `dispatch serve` with EXECUTOR=kubernetes submits its Jobs to a single
// node (internal/testinfra/kubenode) whose kubelet runs the runner beside a
// privileged dind native sidecar, as in a cluster. The tests carry the
// e2enode build tag and run with `make e2e-node`.
package e2enode
