package plan

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// golang: modules downloaded in a layer of their own, a static binary
// (CGO_ENABLED=0), and a scratch runtime holding only it, the CA
// certificates and a /tmp.
func (b *tbuild) golang() error {
	r, df := b.repo, b.df
	b.rec.Template, b.rec.PackageManager = "go", "go"
	pkg, err := b.goMainPackage()
	if err != nil {
		return err
	}
	builder := b.image("go", b.src.Detected.Versions["go"], 2)
	b.rec.BaseImage = builder
	own := b.src.BuildCommand != "" || b.src.StartCommand != "" || b.src.Detected.StartCommand != ""
	runtime := "scratch"
	if own {
		// A command of the user's may need a shell and finds what its
		// build made in the source tree.
		runtime = b.image("debian", "", 0)
	}
	b.rec.RuntimeImage = runtime
	mod := cache{name: "gomod", target: "/go/pkg/mod", carried: true}
	gobuild := cache{name: "gobuild", target: "/root/.cache/go-build", carried: true}

	b.header()
	df.from(builder, "build")
	df.line("WORKDIR /src")
	df.env("CGO_ENABLED", "0")
	vendored := r.isFile("vendor/modules.txt")
	if r.isFile("go.mod") && !vendored {
		files := []string{"go.mod"}
		if r.isFile("go.sum") {
			files = append(files, "go.sum")
		}
		df.copy("", files, "./")
		b.rec.Install = "go mod download"
		df.run(b.rec.Install, mod)
	}
	df.copy("", []string{"."}, "./")
	out := "/out/server"
	b.buildStep(fmt.Sprintf(`go build -trimpath -ldflags="-s -w" -o %s %s`, out, pkg), mod, gobuild)
	df.run("mkdir -p /out/tmp && chmod 1777 /out/tmp")
	df.blank()
	if own {
		df.from(runtime, "")
		df.copyFrom("build", []string{"/etc/ssl/certs/ca-certificates.crt"}, "/etc/ssl/certs/")
		df.line("WORKDIR /app")
		df.copyFrom("build", []string{"/src/"}, "./")
		if b.src.BuildCommand == "" {
			df.copyFrom("build", []string{out}, "/app/server")
		}
		b.start(b.startCommand("/app/server"))
		return nil
	}
	df.from(runtime, "")
	df.copyFrom("build", []string{"/etc/ssl/certs/ca-certificates.crt"}, "/etc/ssl/certs/")
	df.copyFrom("build", []string{"/out/tmp"}, "/tmp")
	df.copyFrom("build", []string{out}, "/server")
	b.start(b.startCommand("/server"))
	return nil
}

// goMainPackage is the package to build: the root when it has main.go, else
// the one command under cmd/ (or the one named after the module or server).
func (b *tbuild) goMainPackage() (string, error) {
	r := b.repo
	if r.isFile("main.go") {
		return ".", nil
	}
	var cmds []string
	f, err := r.root.Open("cmd")
	if err == nil {
		names, _ := f.Readdirnames(200)
		f.Close()
		slices.Sort(names)
		for _, n := range names {
			if r.isFile(path.Join("cmd", n, "main.go")) {
				cmds = append(cmds, n)
			}
		}
	}
	switch len(cmds) {
	case 0:
		return "", noTemplate("no main.go at the root or under cmd/")
	case 1:
		return "./cmd/" + cmds[0], nil
	}
	module := ""
	if data, ok := r.read("go.mod"); ok {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "module" {
				module = path.Base(strings.Trim(f[1], `"`))
			}
		}
	}
	for _, want := range []string{module, "server", "api", "web", "app"} {
		if slices.Contains(cmds, want) {
			return "./cmd/" + want, nil
		}
	}
	return "", noTemplate("several commands under cmd/ (%s) and none is the obvious server: set BUILD_COMMAND and START_COMMAND, or ROOT_DIRECTORY", strings.Join(cmds, ", "))
}
