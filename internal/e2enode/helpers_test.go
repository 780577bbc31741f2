//go:build e2enode

package e2enode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alternatefutures/af-builder/functions/dispatch/apiauth"
	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
)

// build is one build dispatch queued for a push.
type build struct {
	id, job, sha string
	pushed       time.Time
}

// push commits files to main and sends GitHub's signed push webhook for it.
func (d *dispatch) push(t *testing.T, files map[string]gitserver.File) build {
	t.Helper()
	before, _ := d.repo.Head("main")
	var sha string
	var err error
	if before == "" {
		sha, err = d.repo.Commit("main", files, "e2e")
		before = strings.Repeat("0", 40)
	} else {
		sha, err = d.repo.Update("main", files, "e2e change")
	}
	if err != nil {
		t.Fatal(err)
	}
	p := webhooktest.Push{
		InstallationID: installationID, Owner: owner, Repo: d.repo.Name(),
		Before: before, After: sha, PushedAt: time.Now(),
		Commits: []webhooktest.Commit{{ID: sha, Message: "e2e", Modified: []string{"Dockerfile"}}},
	}
	b := build{sha: sha, pushed: time.Now()}
	req := webhooktest.Request(d.url+"/webhooks/github", "push", "e2e-"+secret()[:12], p.Payload(), []byte(suite.webhookSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var answer struct {
		Builds []struct{ BuildJobID, Status, JobName string }
	}
	if err := json.Unmarshal(raw, &answer); err != nil || resp.StatusCode/100 != 2 || len(answer.Builds) != 1 || answer.Builds[0].Status != "queued" {
		t.Fatalf("dispatch answered the push %d: %s", resp.StatusCode, raw)
	}
	b.id, b.job = answer.Builds[0].BuildJobID, answer.Builds[0].JobName
	return b
}

// cancel sends service-cloud-api's signed DELETE /v1/builds/{id}.
func (d *dispatch) cancel(t *testing.T, id string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, d.url+"/v1/builds/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	apiauth.Sign(req, []byte(suite.apiSecret), nil, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("DELETE /v1/builds/%s answered %d: %s", id, resp.StatusCode, raw)
	}
}

// pod returns the build's pod, or nil when there is none.
func (d *dispatch) pod(ctx context.Context, id string) (*corev1.Pod, error) {
	pods, err := suite.node.Client.CoreV1().Pods(d.ns).List(ctx, metav1.ListOptions{
		LabelSelector: kubernetes.LabelBuildID + "=" + kubernetes.LabelValue(id),
	})
	if err != nil {
		return nil, err
	}
	if len(pods.Items) == 0 {
		return nil, nil
	}
	return &pods.Items[0], nil
}

// waitPod polls the build's pod every 100 ms until cond holds.
func (d *dispatch) waitPod(t *testing.T, id string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last *corev1.Pod
	for {
		p, err := d.pod(ctx, id)
		if err == nil {
			last = p
			if cond(p) {
				return p
			}
		}
		select {
		case <-ctx.Done():
			state := "no pod"
			if last != nil {
				b, _ := json.Marshal(last.Status)
				state = string(b)
			}
			t.Fatalf("build %s: %s not seen within %s; pod: %s", id, what, timeout, state)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *dispatch) job(ctx context.Context, name string) (*batchv1.Job, error) {
	j, err := suite.node.Client.BatchV1().Jobs(d.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return j, err
}

func containerState(p *corev1.Pod, name string) (corev1.ContainerState, string) {
	if p == nil {
		return corev1.ContainerState{}, ""
	}
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if cs.Name == name {
			return cs.State, cs.ContainerID
		}
	}
	return corev1.ContainerState{}, ""
}

func builderRunning(p *corev1.Pod) bool {
	s, _ := containerState(p, kubernetes.BuilderContainer)
	return s.Running != nil
}

func builderStartedAt(p *corev1.Pod) time.Time {
	if s, _ := containerState(p, kubernetes.BuilderContainer); s.Running != nil {
		return s.Running.StartedAt.Time
	}
	return time.Time{}
}

// waitLog waits for a RUNNING update of the build whose log contains s.
func waitLog(t *testing.T, id, s string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := suite.sink.WaitFor(ctx, func(received []callbacksink.Delivery) bool {
		for _, d := range received {
			if d.BuildJobID == id {
				if logs, _ := d.Payload["logs"].(string); strings.Contains(logs, s) {
					return true
				}
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("build %s: no log line with %q within %s; state %q", id, s, timeout, suite.sink.State(id))
	}
}

func waitTerminal(t *testing.T, id string, timeout time.Duration) callbacksink.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d, err := suite.sink.WaitTerminal(ctx, id)
	if err != nil {
		t.Fatalf("build %s: no terminal callback within %s (state %q)", id, timeout, suite.sink.State(id))
	}
	return d
}

// terminals are the accepted terminal deliveries of a build, in order.
func terminals(id string) []callbacksink.Delivery {
	var out []callbacksink.Delivery
	for _, d := range suite.sink.Deliveries(id) {
		if d.Accepted() && callbacksink.IsTerminal(d.Status) {
			out = append(out, d)
		}
	}
	return out
}

// noSecretsIn fails the test when a build's callbacks carry a credential.
func noSecretsIn(t *testing.T, id string) {
	t.Helper()
	for _, d := range suite.sink.Deliveries(id) {
		for _, s := range append(suite.gh.Tokens(), suite.reg.Password(), suite.callbackSecret, suite.webhookSecret) {
			if s != "" && strings.Contains(string(d.Body), s) {
				t.Errorf("callback %d of %s carries a secret", d.Seq, id)
			}
		}
	}
}

// waitGone waits until check reports the object absent.
func waitGone(t *testing.T, what string, timeout time.Duration, present func(ctx context.Context) (bool, error)) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		there, err := present(ctx)
		if err == nil && !there {
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s still there after %s (last error %v)", what, timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// runningOnNode reports the node's running tasks among ids (container ids
// as the pod status gives them, "containerd://...").
func runningOnNode(t *testing.T, ids ...string) []string {
	t.Helper()
	tasks, err := suite.node.Tasks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, id := range ids {
		id = strings.TrimPrefix(id, "containerd://")
		for _, task := range tasks {
			if id != "" && task == id {
				out = append(out, id)
			}
		}
	}
	return out
}

func str(v any) string { return fmt.Sprint(v) }
