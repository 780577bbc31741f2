package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/alternatefutures/af-builder/functions/dispatch/webhook/webhooktest"
	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
)

// built is one finished build, as the platform API heard it.
type built struct {
	id        string
	image     string
	digest    string
	framework string
	port      any
	timings   map[string]int64
	total     time.Duration
}

// pushAndWait commits change (nothing for the first push, whose commit is
// already there), sends GitHub's push webhook for it, and waits for the
// terminal callback.
func (d *demo) pushAndWait(ctx context.Context, change map[string]gitserver.File) (built, error) {
	before, _ := d.repo.Head("main")
	sha := before
	push := webhooktest.Push{InstallationID: installationID, Owner: owner, Repo: repo}
	if change == nil {
		push.Before = strings.Repeat("0", 40)
		push.Created = true
		push.Commits = []webhooktest.Commit{{ID: sha, Message: "sample app", Added: []string{"Dockerfile"}}}
	} else {
		var err error
		if sha, err = d.repo.Update("main", change, "change one file"); err != nil {
			return built{}, err
		}
		var modified []string
		for f := range change {
			modified = append(modified, f)
		}
		push.Before = before
		push.Commits = []webhooktest.Commit{{ID: sha, Message: "change one file", Modified: modified}}
	}
	push.After = sha

	start := time.Now()
	body := push.Payload()
	req := webhooktest.Request(d.dispatch+"/webhooks/github", "push", "demo-"+hex8(), body, d.webhook)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return built{}, fmt.Errorf("send webhook: %w", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var answer struct {
		Status string
		Builds []struct{ ServiceID, BuildJobID, Status, JobName, Reason string }
	}
	if err := json.Unmarshal(raw, &answer); err != nil || resp.StatusCode/100 != 2 || len(answer.Builds) != 1 || answer.Builds[0].Status != "queued" {
		return built{}, fmt.Errorf("dispatch answered %d: %s", resp.StatusCode, raw)
	}
	b := built{id: answer.Builds[0].BuildJobID}
	fmt.Printf("dispatch answered %d in %s: build %s queued (%s)\n", resp.StatusCode, time.Since(start).Round(time.Millisecond), b.id, answer.Builds[0].JobName)

	wctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	term, err := d.sink.WaitTerminal(wctx, b.id)
	if err != nil {
		return built{}, fmt.Errorf("no terminal callback for %s: %w", b.id, err)
	}
	b.total = time.Since(start)
	p := term.Payload
	if p["status"] != "SUCCEEDED" {
		return built{}, fmt.Errorf("build %s ended %v in phase %v: %v", b.id, p["status"], p["failedPhase"], p["errorMessage"])
	}
	running := 0
	for _, dl := range d.sink.Deliveries(b.id) {
		if dl.Status == "RUNNING" && dl.Accepted() {
			running++
		}
	}
	b.image, _ = p["imageTag"].(string)
	b.digest, _ = p["imageDigest"].(string)
	b.framework, _ = p["detectedFramework"].(string)
	b.port = p["detectedPort"]
	b.timings = map[string]int64{}
	if t, ok := p["phaseTimingsMs"].(map[string]any); ok {
		for k, v := range t {
			if f, ok := v.(float64); ok {
				b.timings[k] = int64(f)
			}
		}
	}
	if p["commitSha"] != sha {
		return built{}, fmt.Errorf("SUCCEEDED names commit %v, pushed %s", p["commitSha"], sha)
	}
	fmt.Printf("SUCCEEDED (token verified) after %d RUNNING updates: %s@%s in %s\n", running, b.image, b.digest, b.total.Round(time.Millisecond))
	return b, nil
}

// runImage pulls the pushed image back from the registry, runs it with the
// port detection reported, and asks it for its page.
func (d *demo) runImage(ctx context.Context, b built, want string) error {
	c, err := client.New(client.WithHost(d.engine))
	if err != nil {
		return err
	}
	defer c.Close()
	ref := b.image + "@" + b.digest
	pull, err := c.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: d.reg.RegistryAuth()})
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	if err := pull.Wait(ctx); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cr, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Image:  ref,
		Config: &container.Config{Env: []string{fmt.Sprintf("PORT=%d", port)}},
		// The demo engine has no bridge network; the app listens on the host's loopback.
		HostConfig: &container.HostConfig{NetworkMode: "host"},
	})
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	defer c.ContainerRemove(context.Background(), cr.ID, client.ContainerRemoveOptions{Force: true})
	if _, err := c.ContainerStart(ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte(want)) {
				return fmt.Errorf("the app answered %d: %s", resp.StatusCode, page)
			}
			fmt.Printf("the image answers GET %s -> %d %q\n", url, resp.StatusCode, strings.TrimSpace(lastLine(page)))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the app never answered on %s: %w", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func secret() string { return hex8() + hex8() }

func hex8() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
