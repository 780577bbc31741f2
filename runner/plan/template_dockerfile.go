package plan

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// appUser is the runtime user of every template image: numeric, so it needs
// no account in the image, and not root.
const appUser = "10001:10001"

// dockerfile writes a Dockerfile the way a person would, one instruction a
// line. Commands the user gave (BUILD_COMMAND, START_COMMAND) always go in
// JSON exec form through /bin/sh, so no character in them (a newline, a
// trailing backslash, a leading '[') can change how the Dockerfile parses;
// the template's own commands are plain shell form, easier to read.
type dockerfile struct {
	b        strings.Builder
	platform string
	cacheKey string
	// carried are the carried mounts this Dockerfile uses, in order.
	carried []CarriedMount
	// link: the builder takes COPY --link (Source.CopyLink).
	link bool
}

func (d *dockerfile) String() string { return d.b.String() }

func (d *dockerfile) comment(format string, args ...any) {
	for _, l := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		d.b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
}

func (d *dockerfile) blank() { d.b.WriteString("\n") }

func (d *dockerfile) line(format string, args ...any) {
	fmt.Fprintf(&d.b, format+"\n", args...)
}

// from starts a stage for the target platform, so the Dockerfile builds the
// same image wherever a user runs it.
func (d *dockerfile) from(image, stage string) {
	if stage != "" {
		d.line("FROM --platform=%s %s AS %s", d.platform, image, stage)
	} else {
		d.line("FROM --platform=%s %s", d.platform, image)
	}
}

// env sets variables, one ENV line each.
func (d *dockerfile) env(kv ...string) {
	for i := 0; i+1 < len(kv); i += 2 {
		d.line("ENV %s=%s", kv[i], envValue(kv[i+1]))
	}
}

var plainValue = regexp.MustCompile(`^[A-Za-z0-9_./:@%+,=-]*$`)

func envValue(v string) string {
	if plainValue.MatchString(v) && !strings.Contains(v, "$") {
		return v
	}
	return jsonString(v)
}

// cache is one BuildKit cache mount. Its id carries the service's cache key,
// so two services never share (and so never poison) each other's caches.
type cache struct {
	name, target string
	// locked: the tool cannot share the directory with a concurrent build (apt).
	locked bool
	// carried: worth carrying to a new builder (see CarriedMount), as a
	// build step that lives on it runs cold without it although every
	// layer before it came from the registry cache: Next's .next/cache
	// (its webpack caches), Go's module cache (what go build reads the
	// modules from: the go mod download layer is empty) and build cache
	// (the standard library and dependencies compiled). Package managers'
	// download caches are not: they only help an install that the
	// registry cache does not already hold as a layer.
	carried bool
	// fromStage makes it no cache but target bound read-write from that
	// stage, the step's writes to it thrown away (see bindFrom).
	fromStage string
}

// bindFrom lends a step a stage's directory without copying it into the
// step's layers.
func bindFrom(stage, target string) cache { return cache{target: target, fromStage: stage} }

func (d *dockerfile) mountFlags(mounts []cache) string {
	var b strings.Builder
	for _, m := range mounts {
		if m.fromStage != "" {
			fmt.Fprintf(&b, "--mount=type=bind,from=%s,source=%s,target=%s,rw ", m.fromStage, m.target, m.target)
			continue
		}
		id := d.cacheID(m.name)
		if m.carried && !slices.ContainsFunc(d.carried, func(c CarriedMount) bool { return c.ID == id }) {
			d.carried = append(d.carried, CarriedMount{ID: id, Path: m.target})
		}
		fmt.Fprintf(&b, "--mount=type=cache,id=%s,target=%s", id, m.target)
		if m.locked {
			b.WriteString(",sharing=locked")
		}
		b.WriteString(" ")
	}
	return b.String()
}

var unsafeIDChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// cacheID is af-<service cache key>-<cache name>.
func (d *dockerfile) cacheID(name string) string {
	key := unsafeIDChars.ReplaceAllString(d.cacheKey, "-")
	if key == "" {
		key = "local"
	}
	return "af-" + key + "-" + name
}

// run writes one of the template's own commands, in shell form.
func (d *dockerfile) run(script string, mounts ...cache) {
	d.line("RUN %s%s", d.mountFlags(mounts), script)
}

// runUser writes a command the user gave: one script, in JSON exec form.
func (d *dockerfile) runUser(script string, mounts ...cache) {
	d.line("RUN %s%s", d.mountFlags(mounts), jsonArray(shellArgv(script)))
}

// copy writes COPY in JSON form, so file names with spaces stay whole.
func (d *dockerfile) copy(flags string, srcs []string, dst string) {
	if flags != "" {
		flags += " "
	}
	d.line("COPY %s%s", flags, jsonArray(append(append([]string{}, srcs...), dst)))
}

// copyFrom copies from an earlier stage into the runtime stage: a linked
// copy where the builder takes one, so the layer it makes depends on its
// source alone. On a new builder whose registry cache holds the stages, the
// runtime stage then needs none of its layers on disk, and an unchanged one
// (the production dependencies) goes to the image without being pulled. A
// RUN after the copies would need them all on disk again.
func (d *dockerfile) copyFrom(stage string, srcs []string, dst string) {
	flags := "--from=" + stage
	if d.link {
		flags = "--link " + flags
	}
	d.copy(flags, srcs, dst)
}

// cmd writes the start command in exec form: argv when it needs no shell,
// else /bin/sh -c with the command as one script.
func (d *dockerfile) cmd(argv []string) {
	d.line("CMD %s", jsonArray(argv))
}

// shellArgv runs script with /bin/sh; a multi-line script stops at its first
// failing line, as a CI runner's would.
func shellArgv(script string) []string {
	if strings.Contains(script, "\n") {
		return []string{"/bin/sh", "-ec", script}
	}
	return []string{"/bin/sh", "-c", script}
}

// plainWords is a command with nothing a shell would interpret: no quotes,
// variables, operators, globs, or a VAR=value prefix.
var plainWords = regexp.MustCompile(`^[A-Za-z0-9_./:@%+,-]+( +[A-Za-z0-9_./:@%+,=-]+)*$`)

// startArgv is the exec form of a start command: its words when it needs no
// shell, else the shell running it.
func startArgv(cmd string) []string {
	cmd = strings.TrimSpace(cmd)
	if plainWords.MatchString(cmd) {
		return strings.Fields(cmd)
	}
	return shellArgv(cmd)
}

func jsonArray(items []string) string {
	parts := make([]string, len(items))
	for i, s := range items {
		parts[i] = jsonString(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	// <, > and & are common in commands; leave them readable.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
