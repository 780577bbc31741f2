package kubernetes

import "github.com/alternatefutures/af-builder/functions/dispatch/replay"

// Records is the replay memory kept beside this executor's Jobs: one Lease
// per build, named like its Job, in the same namespace and reached with the
// same client (the Role grants leases there).
func (e *Executor) Records() *replay.Leases {
	return &replay.Leases{Client: e.client, Namespace: e.cfg.Namespace, Name: JobName}
}
