package replay

import (
	"context"
	"sync"
)

// InMemory keeps records in the process: for the local executor, whose
// builds are remembered in memory too, and which a restart forgets alike.
type InMemory struct {
	mu   sync.Mutex
	recs map[string]Record
}

// NewInMemory returns an empty memory.
func NewInMemory() *InMemory { return &InMemory{recs: map[string]Record{}} }

func (m *InMemory) Claim(_ context.Context, r Record) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if got, ok := m.recs[r.BuildJobID]; ok {
		return got, true, nil
	}
	m.recs[r.BuildJobID] = r
	return r, false, nil
}

func (m *InMemory) Update(_ context.Context, id, state, jobName, namespace string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[id]
	if !ok {
		return nil
	}
	r.State = state
	if jobName != "" {
		r.JobName, r.Namespace = jobName, namespace
	}
	m.recs[id] = r
	return nil
}

func (m *InMemory) Get(_ context.Context, id string) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[id]
	return r, ok, nil
}

func (m *InMemory) List(context.Context) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Record, 0, len(m.recs))
	for _, r := range m.recs {
		out = append(out, r)
	}
	return out, nil
}

func (m *InMemory) Forget(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, id)
	return nil
}
