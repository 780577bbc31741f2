// Package packaging holds tests of the project's packaging files (the runner
// Dockerfile) that cannot be built on machines without registry access:
// they parse the files with BuildKit's own Dockerfile parser and check what a
// reviewer would check by hand.
package packaging
