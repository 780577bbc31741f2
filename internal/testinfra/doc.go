// Package testinfra is the test infrastructure of af-builder: real parts, not
// mocks. Each subpackage starts or serves the genuine thing a build touches in
// production, on 127.0.0.1 and in temporary directories, so that end-to-end
// tests (and `make demo`) exercise the same protocols the runner meets in a
// cluster:
//
//   - dockerd: Debian's Docker engine (dockerd 20.10 with BuildKit and its
//     own managed containerd) as a child process with private data and exec
//     roots, plus a busybox base image made with `docker import` semantics,
//     because no image can be pulled here. Needs the Debian packages
//     docker.io (which pulls in containerd and runc) and busybox-static
//     (/bin/busybox), and root. Set AF_TEST_DOCKER_HOST to reuse a running
//     engine instead (dockerd.FromEnv).
//   - registry: Debian's distribution 2.8 (`docker-registry serve`) with
//     htpasswd (bcrypt) auth and filesystem storage, plus plain-HTTP client
//     helpers to assert what was pushed. Needs the Debian package
//     docker-registry. The bcrypt file is written in Go, so apache2-utils is
//     not required.
//   - gitserver: git's own smart-HTTP server (git http-backend) under
//     net/http/cgi with GitHub-style `x-access-token` Basic auth. Needs the
//     Debian package git.
//   - kubenode: a single-node Kubernetes (etcd, kube-apiserver,
//     kube-controller-manager, kube-scheduler, kubelet on Debian's
//     containerd and runc) with images written as docker-save archives
//     and imported without a registry. Needs root, the Debian packages
//     containerd, runc and containernetworking-plugins, and the binaries of
//     `tools/kube/build.sh --node`.
//   - callbacksink: an HTTP server that answers POST /internal/build-callback
//     the way service-cloud-api does (token check, body validation, first
//     terminal status wins), scriptable and recording. Needs nothing.
//
// When a binary is missing, Start fails with a *MissingBinaryError naming the
// Debian package to install, rather than skipping: a suite that silently
// skips its end-to-end tests proves nothing.
package testinfra
