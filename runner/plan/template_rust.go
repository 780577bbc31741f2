package plan

import (
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

// cargoManifest is the part of Cargo.toml the Rust template reads.
type cargoManifest struct {
	Package struct {
		Name  string `toml:"name"`
		Build any    `toml:"build"`
	} `toml:"package"`
	Bin []struct {
		Name string `toml:"name"`
		Path string `toml:"path"`
	} `toml:"bin"`
	Workspace map[string]any `toml:"workspace"`
}

// rust: the dependencies compiled in a layer of their own against stub
// sources (the cargo-chef idea, without the tool), so a source change does
// not recompile them; a Debian slim runtime with only the binary.
func (b *tbuild) rust() error {
	r, df, d := b.repo, b.df, b.src.Detected
	b.rec.Template, b.rec.PackageManager = "rust", "cargo"
	data, ok := r.read("Cargo.toml")
	if !ok {
		return noTemplate("Cargo.toml is not readable")
	}
	var m cargoManifest
	if _, err := toml.Decode(string(data), &m); err != nil {
		return noTemplate("Cargo.toml does not parse")
	}
	if m.Workspace != nil {
		return noTemplate("a Cargo workspace: set ROOT_DIRECTORY to the member to deploy, or add a Dockerfile")
	}
	bin := m.Package.Name
	if len(m.Bin) == 1 && m.Bin[0].Name != "" {
		bin = m.Bin[0].Name
	}
	if bin == "" || (len(m.Bin) == 0 && !r.isFile("src/main.rs")) || len(m.Bin) > 1 {
		return noTemplate("Cargo.toml has no single binary to run (src/main.rs or one [[bin]])")
	}
	if m.Package.Build != nil || r.isFile("build.rs") {
		return noTemplate("a build script (build.rs) needs the whole source before the dependencies compile")
	}
	channel := d.Versions["rust"]
	switch {
	case strings.HasPrefix(channel, "nightly") || strings.HasPrefix(channel, "beta"):
		return noTemplate("the %s toolchain: the template builds with stable Rust images", channel)
	case channel == "stable":
		channel = ""
	}
	builder := b.image("rust", channel, 2)
	own := b.src.BuildCommand != "" || b.src.StartCommand != "" || d.StartCommand != ""
	runtime := b.image("debian", "", 0)
	b.rec.BaseImage, b.rec.RuntimeImage = builder, runtime
	registry := cache{name: "cargo-registry", target: "/usr/local/cargo/registry"}
	git := cache{name: "cargo-git", target: "/usr/local/cargo/git"}
	locked := ""
	files := []string{"Cargo.toml"}
	if r.isFile("Cargo.lock") {
		locked = " --locked"
		files = append(files, "Cargo.lock")
	} else {
		b.note("no Cargo.lock: dependencies are resolved afresh on every build; commit Cargo.lock")
	}

	b.header()
	df.from(builder, "build")
	df.line("WORKDIR /app")
	df.copy("", files, "./")
	// Stubs stand in for the sources; the real ones replace them below, and
	// the touch makes cargo rebuild the crate itself whatever their mtimes.
	stubs := []string{"mkdir -p src", `echo 'fn main() {}' > src/main.rs`}
	if r.isFile("src/lib.rs") {
		stubs = append(stubs, "touch src/lib.rs")
	}
	for _, bn := range m.Bin {
		if bn.Path != "" && bn.Path != "src/main.rs" {
			stubs = append(stubs, fmt.Sprintf("mkdir -p $(dirname %s) && echo 'fn main() {}' > %s", bn.Path, bn.Path))
		}
	}
	b.rec.Install = "cargo build --release" + locked + " (dependencies only)"
	df.run(strings.Join(append(stubs, "cargo build --release"+locked, "rm -rf src"), " && "), registry, git)
	df.copy("", []string{"."}, "./")
	b.buildStep(fmt.Sprintf("find src -name '*.rs' -exec touch {} + && cargo build --release%s && mkdir -p /out && cp target/release/%s /out/server", locked, bin), registry, git)
	df.blank()
	df.from(runtime, "")
	df.copyFrom("build", []string{"/etc/ssl/certs/ca-certificates.crt"}, "/etc/ssl/certs/")
	df.line("WORKDIR /app")
	if own && b.src.BuildCommand != "" {
		// The user's build leaves its output in the source tree.
		df.copyFrom("build", []string{"/app/"}, "./")
	} else {
		df.copyFrom("build", []string{"/out/server"}, "/app/server")
	}
	if d.Framework == "rocket" {
		// Rocket listens on localhost unless told otherwise.
		df.env("ROCKET_ADDRESS", "0.0.0.0")
	}
	b.start(b.startCommand("/app/server"))
	return nil
}
