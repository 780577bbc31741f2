//go:build e2enode

package e2enode

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alternatefutures/af-builder/functions/dispatch/executor/kubernetes"
	"github.com/alternatefutures/af-builder/internal/testinfra/callbacksink"
	"github.com/alternatefutures/af-builder/shared/contract"
)

// A signed push becomes a Job; its pod runs the runner beside dind; the
// image lands in the registry with the digest SUCCEEDED reports; the Job
// completes with the dind sidecar stopped, and the TTL controller and the
// garbage collector remove the Job, its pod and its Secret.
func TestPushBuildsOnTheNodeAndTTLCleansUp(t *testing.T) {
	exclusive(t)
	d := startDispatch(t, "success")
	b := d.push(t, quickApp)

	running := d.waitPod(t, b.id, 2*time.Minute, "pod Running", func(p *corev1.Pod) bool {
		return p != nil && p.Status.Phase == corev1.PodRunning
	})
	podRunning := time.Since(b.pushed)
	d.waitPod(t, b.id, 2*time.Minute, "builder running", func(p *corev1.Pod) bool {
		return builderRunning(p) || p != nil && p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending
	})
	runnerStart := time.Since(b.pushed)

	term := waitTerminal(t, b.id, 5*time.Minute)
	total := time.Since(b.pushed)
	p := term.Payload
	if term.Status != "SUCCEEDED" {
		t.Fatalf("build ended %s in phase %v: %v", term.Status, p["failedPhase"], p["errorMessage"])
	}
	if p["commitSha"] != b.sha {
		t.Errorf("SUCCEEDED names commit %v, pushed %s", p["commitSha"], b.sha)
	}
	tag := str(p["imageTag"])
	repo, ref, _ := strings.Cut(strings.TrimPrefix(tag, suite.reg.Addr()+"/"), ":")
	digest, err := suite.reg.ManifestDigest(context.Background(), repo, ref)
	if err != nil {
		t.Fatalf("image %s not in the registry: %v", tag, err)
	}
	if p["imageDigest"] != digest {
		t.Errorf("SUCCEEDED reports digest %v, the registry has %s", p["imageDigest"], digest)
	}
	noSecretsIn(t, b.id)

	// The Job completes on the builder's exit; the kubelet stops the dind
	// sidecar. Observed before the 10 s TTL removes them.
	ctx := context.Background()
	done := d.waitPod(t, b.id, time.Minute, "pod Succeeded with the sidecar stopped", func(p *corev1.Pod) bool {
		dind, _ := containerState(p, kubernetes.DindContainer)
		return p != nil && p.Status.Phase == corev1.PodSucceeded && dind.Terminated != nil
	})
	if s, _ := containerState(done, kubernetes.BuilderContainer); s.Terminated == nil || s.Terminated.ExitCode != 0 {
		t.Errorf("builder state %+v, want exited 0", s)
	} else if !strings.Contains(s.Terminated.Message, contract.ReportedMark) {
		// The non-root runner could write its termination log, which its
		// readiness probe and the reaper read.
		t.Errorf("builder's termination message %q lacks the mark the runner writes once SUCCEEDED is delivered", s.Terminated.Message)
	}
	if !done.Spec.HostNetwork || done.Spec.InitContainers[0].Image != dindImage {
		t.Errorf("pod is not the test-node variant of the production pod: hostNetwork %v, dind %s", done.Spec.HostNetwork, done.Spec.InitContainers[0].Image)
	}
	var job *batchv1.Job
	for deadline := time.Now().Add(30 * time.Second); ; {
		j, err := d.job(ctx, b.job)
		if err != nil || j == nil {
			t.Fatalf("job %s: %v (gone before it was seen complete)", b.job, err)
		}
		if job = j; hasCondition(job, batchv1.JobComplete) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !hasCondition(job, batchv1.JobComplete) {
		t.Errorf("job conditions %+v, want Complete", job.Status.Conditions)
	}
	if _, err := suite.node.Client.CoreV1().Secrets(d.ns).Get(ctx, b.job, metav1.GetOptions{}); err != nil {
		t.Errorf("the build's Secret: %v", err)
	}

	ttl := waitGone(t, "job "+b.job, 90*time.Second, func(ctx context.Context) (bool, error) {
		j, err := d.job(ctx, b.job)
		return j != nil, err
	})
	waitGone(t, "secret "+b.job, 60*time.Second, func(ctx context.Context) (bool, error) {
		_, err := suite.node.Client.CoreV1().Secrets(d.ns).Get(ctx, b.job, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return true, err
	})
	waitGone(t, "pod of "+b.id, 60*time.Second, func(ctx context.Context) (bool, error) {
		p, err := d.pod(ctx, b.id)
		return p != nil, err
	})

	engine := time.Duration(0)
	if tm, ok := p["phaseTimingsMs"].(map[string]any); ok {
		if v, ok := tm["engine"].(float64); ok {
			engine = time.Duration(v) * time.Millisecond
		}
	}
	t.Logf("FIGURES push->pod Running %s; pod Running->runner started %s; runner waited for dind %s; push->SUCCEEDED %s; job gone %s after SUCCEEDED (TTL 10s); pod %s",
		podRunning.Round(10*time.Millisecond), (runnerStart - podRunning).Round(10*time.Millisecond),
		engine, total.Round(10*time.Millisecond), ttl.Round(100*time.Millisecond), running.Name)
}

// DELETE mid-build: CANCELED first; the pod is gone within its grace
// period, nothing of the build runs on the node any more, and the runner's
// own terminal status arrives second and is kept out.
func TestDeleteMidBuildStopsThePod(t *testing.T) {
	exclusive(t)
	d := startDispatch(t, "cancel")
	b := d.push(t, slowApp())
	waitLog(t, b.id, "sleep", 4*time.Minute)
	p := d.waitPod(t, b.id, time.Minute, "builder running", builderRunning)
	_, builderID := containerState(p, kubernetes.BuilderContainer)
	_, dindID := containerState(p, kubernetes.DindContainer)
	grace := time.Duration(*p.Spec.TerminationGracePeriodSeconds) * time.Second

	d.cancel(t, b.id)
	first := terminals(b.id)
	if len(first) == 0 || first[0].Status != "CANCELED" {
		t.Fatalf("after DELETE answered, terminal statuses %v, want CANCELED first", statuses(first))
	}
	gone := waitGone(t, "pod of "+b.id, grace+30*time.Second, func(ctx context.Context) (bool, error) {
		p, err := d.pod(ctx, b.id)
		return p != nil, err
	})
	if gone > grace {
		t.Errorf("pod took %s to go, more than its %s grace period", gone, grace)
	}
	if left := runningOnNode(t, builderID, dindID); len(left) > 0 {
		t.Errorf("containers of the canceled build still run on the node: %v", left)
	}
	// The runner got SIGTERM and reported too; the sink kept CANCELED.
	ts := terminals(b.id)
	if len(ts) < 2 {
		t.Errorf("the runner's own terminal status never arrived (deliveries: %d terminal)", len(ts))
	} else if ts[1].Final || !ts[0].Final {
		t.Errorf("the runner's terminal %s replaced CANCELED", ts[1].Status)
	}
	if got := suite.sink.State(b.id); got != "CANCELED" {
		t.Errorf("final state %s, want CANCELED", got)
	}
	t.Logf("FIGURES DELETE->pod gone %s (grace %s)", gone.Round(100*time.Millisecond), grace)
}

// A second push to the branch cancels the first build's pod for real, and
// the second build then succeeds on the same node.
func TestSupersedeCancelsThePod(t *testing.T) {
	exclusive(t)
	d := startDispatch(t, "supersede")
	first := d.push(t, slowApp())
	d.waitPod(t, first.id, 4*time.Minute, "first build's builder running", builderRunning)

	second := d.push(t, quickApp)
	term := waitTerminal(t, first.id, 30*time.Second)
	if term.Status != "CANCELED" || !strings.Contains(str(term.Payload["errorMessage"]), "superseded") {
		t.Errorf("first build ended %s: %v; want CANCELED, superseded", term.Status, term.Payload["errorMessage"])
	}
	waitGone(t, "first build's pod", 3*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := d.pod(ctx, first.id)
		return p != nil, err
	})
	if got := waitTerminal(t, second.id, 5*time.Minute); got.Status != "SUCCEEDED" {
		t.Errorf("second build ended %s in phase %v: %v", got.Status, got.Payload["failedPhase"], got.Payload["errorMessage"])
	}
	if n := len(terminals(first.id)); n < 1 || suite.sink.State(first.id) != "CANCELED" {
		t.Errorf("first build's final state %s", suite.sink.State(first.id))
	}
}

// A build whose runner never gets going runs into the Job's
// activeDeadlineSeconds: the Job fails DeadlineExceeded and the reaper sends
// exactly one FAILED that names the deadline.
func TestDeadlineEndsInOneFailed(t *testing.T) {
	// BUILD_TIMEOUT 10s + margin 1m: activeDeadlineSeconds 70. The runner
	// image does not exist on the node, so the builder never starts and
	// nothing but the deadline can end the build.
	t.Parallel()
	d := startDispatch(t, "deadline", "BUILD_TIMEOUT=10s", "K8S_JOB_DEADLINE_MARGIN=1m",
		"RUNNER_IMAGE=af-builder.test/runner:absent", littleCPU)
	b := d.push(t, quickApp)
	job, err := d.job(context.Background(), b.job)
	if err != nil || job == nil || job.Spec.ActiveDeadlineSeconds == nil || *job.Spec.ActiveDeadlineSeconds != 70 {
		t.Fatalf("job %v: activeDeadlineSeconds not 70: %+v", err, job)
	}
	term := waitTerminal(t, b.id, 3*time.Minute)
	if term.Status != "FAILED" || !strings.Contains(str(term.Payload["errorMessage"]), "deadline") {
		t.Errorf("build ended %s: %v; want FAILED naming the deadline", term.Status, term.Payload["errorMessage"])
	}
	if took := term.At.Sub(b.pushed); took < 70*time.Second {
		t.Errorf("FAILED after %s, before the 70s deadline", took)
	}
	// Several reaper rounds later there is still exactly one.
	time.Sleep(8 * time.Second)
	if ts := terminals(b.id); len(ts) != 1 {
		t.Errorf("%d terminal callbacks, want exactly one", len(ts))
	}
	j, _ := d.job(context.Background(), b.job)
	if j != nil && !hasCondition(j, batchv1.JobFailed) {
		t.Errorf("job conditions %+v, want Failed", j.Status.Conditions)
	}
}

// A runner image the node cannot have (here: absent, with pulls off as
// on this node; on a cluster: a typo, a missing pull secret) would hold
// the build until the Job's deadline. After K8S_START_TIMEOUT the reaper
// reports one FAILED that names the container and the kubelet's reason,
// and deletes the Job.
func TestUnstartableRunnerFailsAfterTheStartTimeout(t *testing.T) {
	t.Parallel()
	const image = "af-builder.test/runner:absent"
	d := startDispatch(t, "unstartable", "RUNNER_IMAGE="+image, "K8S_START_TIMEOUT=5s", littleCPU)
	b := d.push(t, quickApp)
	term := waitTerminal(t, b.id, 2*time.Minute)
	msg := str(term.Payload["errorMessage"])
	if term.Status != "FAILED" || term.Payload["errorClass"] != "infrastructure" ||
		!strings.Contains(msg, "could not start its builder container") || !strings.Contains(msg, image) {
		t.Errorf("build ended %s (%v): %s; want FAILED, infrastructure, naming the builder container and its image", term.Status, term.Payload["errorClass"], msg)
	}
	if took := term.At.Sub(b.pushed); took > time.Minute {
		t.Errorf("FAILED %s after the push; the start timeout is 5 s and the reaper runs every 2 s", took)
	}
	d.waitJobGone(t, b)
	stillOneTerminal(t, b.id)
	t.Logf("FIGURES push->FAILED (start timeout 5s) %s: %s", term.At.Sub(b.pushed).Round(100*time.Millisecond), msg)
}

// The runner's own time limit, which the Job's deadline backs up: a build
// longer than BUILD_TIMEOUT ends in one FAILED from the runner that names
// the limit, and the reaper adds nothing when the Job then fails.
func TestBuildTimeoutEndsInOneFailedFromTheRunner(t *testing.T) {
	exclusive(t)
	d := startDispatch(t, "timeout", "BUILD_TIMEOUT=12s", "K8S_JOB_DEADLINE_MARGIN=1m")
	b := d.push(t, slowApp())
	term := waitTerminal(t, b.id, 3*time.Minute)
	msg := str(term.Payload["errorMessage"])
	if term.Status != "FAILED" || !strings.Contains(msg, "BUILD_TIMEOUT") {
		t.Errorf("build ended %s: %s; want FAILED naming BUILD_TIMEOUT", term.Status, msg)
	}
	ctx := context.Background()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		j, err := d.job(ctx, b.job)
		if err == nil && j != nil && hasCondition(j, batchv1.JobFailed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not fail after the runner's FAILED: %v %+v", b.job, err, j)
		}
	}
	time.Sleep(6 * time.Second) // three reaper rounds
	if ts := terminals(b.id); len(ts) != 1 {
		t.Errorf("terminal callbacks %v, want exactly one", statuses(ts))
	}
}

// A runner killed on the node without reporting (as the OOM killer would):
// the reaper reads the container's exit from the pod and sends one
// FAILED/infrastructure.
func TestKilledRunnerIsReaped(t *testing.T) {
	exclusive(t)
	d := startDispatch(t, "killed")
	b := d.push(t, slowApp())
	waitLog(t, b.id, "sleep", 4*time.Minute)
	p := d.waitPod(t, b.id, time.Minute, "builder running", builderRunning)
	_, builderID := containerState(p, kubernetes.BuilderContainer)

	if err := suite.node.KillContainer(context.Background(), builderID); err != nil {
		t.Fatal(err)
	}
	term := waitTerminal(t, b.id, 2*time.Minute)
	msg := str(term.Payload["errorMessage"])
	if term.Status != "FAILED" || term.Payload["errorClass"] != "infrastructure" || !strings.Contains(msg, "exit 137") {
		t.Errorf("build ended %s (%v): %s; want FAILED, infrastructure, naming exit 137", term.Status, term.Payload["errorClass"], msg)
	}
	time.Sleep(6 * time.Second)
	if ts := terminals(b.id); len(ts) != 1 {
		t.Errorf("%d terminal callbacks, want exactly one", len(ts))
	}
}

// A running build's pod deleted from under it, as a node drain or
// `kubectl delete pod` does: the runner gets SIGTERM and reports FAILED
// itself, and its pod is gone soon after. The Job controller records the
// runner's exit in the Job's Failed condition (the pod failure policy), so
// the reaper, finding a failed Job without a pod, adds no second FAILED.
// Dispatch runs no reaper here: its round runs by hand once the pod is
// gone, as a minute-long REAP_INTERVAL would in production (a round every
// 2 s may still see the pod's exit, and pass without the policy).
func TestPodDeletedMidBuildIsReportedOnceByItsRunner(t *testing.T) {
	exclusive(t)
	d := startDispatch(t, "drained", "REAP_INTERVAL=0")
	b := d.push(t, slowApp())
	waitLog(t, b.id, "sleep", 4*time.Minute)
	p := d.waitPod(t, b.id, time.Minute, "builder running", builderRunning)

	ctx := context.Background()
	if err := suite.node.Client.CoreV1().Pods(d.ns).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	term := waitTerminal(t, b.id, 2*time.Minute)
	if msg := str(term.Payload["errorMessage"]); term.Status != "FAILED" || !strings.Contains(msg, "SIGTERM") {
		t.Errorf("build ended %s: %s; want the runner's FAILED naming SIGTERM", term.Status, msg)
	}
	waitGone(t, "pod of "+b.id, 2*time.Minute, func(ctx context.Context) (bool, error) {
		p, err := d.pod(ctx, b.id)
		return p != nil, err
	})
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		j, err := d.job(ctx, b.job)
		if err == nil && j != nil && hasCondition(j, batchv1.JobFailed) {
			if c := condition(j, batchv1.JobFailed); c.Reason != batchv1.JobReasonPodFailurePolicy {
				t.Errorf("job failed for %s (%s), want PodFailurePolicy: the runner's exit went unrecorded", c.Reason, c.Message)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not fail after its pod was deleted: %v %+v", b.job, err, j)
		}
	}
	cfg := kubernetes.DefaultConfig()
	cfg.Namespace, cfg.RunnerImage = d.ns, runnerImage
	reaper, err := kubernetes.New(suite.node.Client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if lost, err := reaper.Reap(ctx); err != nil || len(lost) != 0 {
		t.Errorf("Reap = %+v, %v; want nothing: the runner reported", lost, err)
	}
	if ts := terminals(b.id); len(ts) != 1 {
		t.Errorf("terminal callbacks %v, want exactly one", statuses(ts))
	}
}

// A dind sidecar that never becomes ready: the runner starts anyway (no
// startup probe holds it back) and fails in phase engine, classed as
// infrastructure, within its engine timeout.
func TestDindNeverReadyFailsInPhaseEngine(t *testing.T) {
	t.Parallel()
	d := startDispatch(t, "nodind", "DIND_IMAGE="+brokenDind, littleCPU)
	b := d.push(t, quickApp)
	pod := d.waitPod(t, b.id, 2*time.Minute, "builder running", builderRunning)
	started := time.Now()
	since := func(at time.Time) time.Duration { return at.Sub(b.pushed).Round(100 * time.Millisecond) }
	var podStart time.Time
	if pod.Status.StartTime != nil {
		podStart = pod.Status.StartTime.Time
	}
	t.Logf("FIGURES after the push: pod created %s, on the node %s, builder running %s (seen %s)",
		since(pod.CreationTimestamp.Time), since(podStart), since(builderStartedAt(pod)), since(started))
	term := waitTerminal(t, b.id, 4*time.Minute)
	msg := str(term.Payload["errorMessage"])
	if term.Status != "FAILED" || term.Payload["failedPhase"] != "engine" || term.Payload["errorClass"] != "infrastructure" {
		t.Errorf("build ended %s in phase %v (%v): %s; want FAILED in phase engine, infrastructure", term.Status, term.Payload["failedPhase"], term.Payload["errorClass"], msg)
	}
	if !strings.Contains(msg, "engine") {
		t.Errorf("message %q does not say the engine failed", msg)
	}
	// The runner's engine timeout is 2m (runner/pipeline.DefaultTimeouts).
	if took := time.Since(started); took > 2*time.Minute+30*time.Second {
		t.Errorf("FAILED %s after the runner started, beyond the 2m engine timeout", took)
	}
	if ts := terminals(b.id); len(ts) != 1 {
		t.Errorf("%d terminal callbacks, want exactly one", len(ts))
	}
}

// littleCPU lets the tests that wait out timers and build nothing (a 70 s
// deadline, a 2 m engine timeout, the start timeout) run beside the others
// on the two-CPU node: their pods ask for 0.2 CPU each, where a build pod
// asks for 1.1, so all fit with one build pod at a time.
const littleCPU = "DIND_CPU_REQUEST=100m"

// nodeLock lets one build pod at a time onto the node: the tests that
// build take it (exclusive), the timer-bound ones run beside them.
var nodeLock sync.Mutex

// exclusive runs the test in parallel with the timer-bound tests but
// alone among the tests that build, until its cleanup (its own cleanups,
// registered later, run first).
func exclusive(t *testing.T) {
	t.Parallel()
	nodeLock.Lock()
	t.Cleanup(nodeLock.Unlock)
}

func (d *dispatch) waitJobGone(t *testing.T, b build) {
	t.Helper()
	waitGone(t, "job "+b.job, time.Minute, func(ctx context.Context) (bool, error) {
		j, err := d.job(ctx, b.job)
		return j != nil, err
	})
}

// stillOneTerminal checks, three reaper rounds (2 s each) later, that the
// build still has exactly one terminal callback.
func stillOneTerminal(t *testing.T, id string) {
	t.Helper()
	time.Sleep(6 * time.Second)
	if ts := terminals(id); len(ts) != 1 {
		t.Errorf("%d terminal callbacks, want exactly one", len(ts))
	}
}

func hasCondition(j *batchv1.Job, c batchv1.JobConditionType) bool {
	return condition(j, c).Type == c
}

func condition(j *batchv1.Job, c batchv1.JobConditionType) batchv1.JobCondition {
	for _, cond := range j.Status.Conditions {
		if cond.Type == c && cond.Status == corev1.ConditionTrue {
			return cond
		}
	}
	return batchv1.JobCondition{}
}

func statuses(ds []callbacksink.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Status+": "+str(d.Payload["errorMessage"]))
	}
	return out
}

// A Job deleted by hand (kubectl delete job) before its pod could run the
// runner: nothing on the node would ever report the build. The finalizer
// holds the Job for the reaper, which reports FAILED once and lets it go;
// the collector then removes the pod and the Secret.
func TestJobDeletedBeforeItsRunnerStartsIsReportedOnce(t *testing.T) {
	t.Parallel()
	// More CPU than the node has: the pod stays Pending, unschedulable.
	d := startDispatch(t, "unscheduled", "DIND_CPU_REQUEST=64", "DIND_CPU_LIMIT=64")
	b := d.push(t, quickApp)
	d.waitPod(t, b.id, time.Minute, "pod Pending", func(p *corev1.Pod) bool {
		return p != nil && p.Status.Phase == corev1.PodPending
	})
	ctx := context.Background()
	bg := metav1.DeletePropagationBackground
	if err := suite.node.Client.BatchV1().Jobs(d.ns).Delete(ctx, b.job, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
	term := waitTerminal(t, b.id, time.Minute)
	msg := str(term.Payload["errorMessage"])
	if term.Status != "FAILED" || term.Payload["errorClass"] != "infrastructure" || !strings.Contains(msg, "Job was deleted while no runner of it was running") {
		t.Errorf("build ended %s (%v): %s; want FAILED, infrastructure, saying the Job was deleted while no runner ran", term.Status, term.Payload["errorClass"], msg)
	}
	d.waitJobGone(t, b)
	waitGone(t, "pod of "+b.id, time.Minute, func(ctx context.Context) (bool, error) {
		p, err := d.pod(ctx, b.id)
		return p != nil, err
	})
	stillOneTerminal(t, b.id)
}
