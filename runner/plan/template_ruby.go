package plan

import (
	"fmt"
	"regexp"
	"strings"
)

// rubyRuntimeLibs are the shared libraries native gems link against that
// the slim runtime image lacks.
var rubyRuntimeLibs = map[string]string{"pg": "libpq5", "mysql2": "libmariadb3"}

// ruby: gems installed with Bundler in the full image (compilers for native
// gems), Rails assets precompiled, and a slim runtime.
func (b *tbuild) ruby() error {
	r, df, d := b.repo, b.df, b.src.Detected
	b.rec.Template, b.rec.PackageManager = "ruby", "bundler"
	lock, _ := r.read("Gemfile.lock")
	gems := lockedGems(lock)
	start, err := b.rubyStart()
	if err != nil {
		return err
	}
	rails := d.Framework == "rails"
	if rails && r.isFile("package.json") {
		return noTemplate("a Rails app with a package.json (jsbundling, cssbundling) needs Node too")
	}
	builder := b.image("ruby-build", d.Versions["ruby"], 2)
	runtime := b.image("ruby", d.Versions["ruby"], 2)
	b.rec.BaseImage, b.rec.RuntimeImage = builder, runtime
	bundle := cache{name: "bundler", target: "/usr/local/bundle/cache"}
	envs := []string{"BUNDLE_WITHOUT", "development:test", "RACK_ENV", "production", "APP_ENV", "production"}
	if rails {
		envs = append(envs, "RAILS_ENV", "production", "RAILS_LOG_TO_STDOUT", "1", "RAILS_SERVE_STATIC_FILES", "1")
	}

	b.header()
	df.from(builder, "build")
	df.line("WORKDIR /app")
	df.env(envs...)
	files := []string{"Gemfile"}
	b.rec.Install = "bundle install"
	if lock != nil {
		files = append(files, "Gemfile.lock")
		df.env("BUNDLE_FROZEN", "true")
	} else {
		b.note("no Gemfile.lock: gems are resolved afresh on every build; commit Gemfile.lock")
	}
	if r.isFile(".ruby-version") {
		// A Gemfile may read it (ruby file: ".ruby-version").
		files = append(files, ".ruby-version")
	}
	df.copy("", files, "./")
	df.run(b.rec.Install, bundle)
	df.copy("", []string{"."}, "./")
	own := ""
	if rails && (gems["sprockets"] || gems["propshaft"]) {
		// Precompiling needs a secret key but no real one: Rails 7.1 takes
		// SECRET_KEY_BASE_DUMMY, older ones any value.
		own = "SECRET_KEY_BASE_DUMMY=1 SECRET_KEY_BASE=precompile-only bundle exec rails assets:precompile"
	}
	b.buildStep(own, bundle)
	df.blank()

	df.from(runtime, "")
	var libs []string
	for gem, lib := range rubyRuntimeLibs {
		if gems[gem] {
			libs = append(libs, lib)
		}
	}
	if len(libs) > 0 {
		sortStrings(libs)
		df.run("apt-get update && apt-get install -y --no-install-recommends "+strings.Join(libs, " ")+" && rm -rf /var/lib/apt/lists/*",
			cache{name: "apt", target: "/var/cache/apt", locked: true})
	}
	df.line("WORKDIR /app")
	df.env(envs...)
	df.copyFrom("build", []string{"/usr/local/bundle"}, "/usr/local/bundle")
	df.copyFrom("build", []string{"/app"}, "/app")
	if rails {
		// Rails writes pids, caches, logs and uploads here.
		df.run(fmt.Sprintf("mkdir -p tmp log storage && chown -R %s tmp log storage", appUser))
	}
	b.start(b.startCommand(start))
	return nil
}

// rubyStart is the template's start command per framework.
func (b *tbuild) rubyStart() (string, error) {
	d, r := b.src.Detected, b.repo
	if b.src.StartCommand != "" || d.StartCommand != "" {
		return "", nil
	}
	switch {
	case d.Framework == "rails":
		// rails server reads PORT.
		return "bundle exec rails server -b 0.0.0.0", nil
	case r.isFile("config.ru"):
		// rackup ignores PORT: the shell passes it.
		return `exec bundle exec rackup config.ru --host 0.0.0.0 --port "$PORT"`, nil
	case d.Framework == "sinatra":
		// Sinatra reads PORT; -o binds all interfaces.
		if f := r.firstFile("app.rb", "server.rb", "main.rb"); f != "" {
			return "bundle exec ruby " + f + " -o 0.0.0.0", nil
		}
	}
	return "", noTemplate("a Ruby app with nothing to start: add a config.ru or Procfile, or set START_COMMAND")
}

var lockedGem = regexp.MustCompile(`(?m)^    ([A-Za-z0-9_.-]+) \(`)

// lockedGems lists the gems Gemfile.lock resolved.
func lockedGems(lock []byte) map[string]bool {
	out := map[string]bool{}
	for _, m := range lockedGem.FindAllSubmatch(lock, -1) {
		out[string(m[1])] = true
	}
	return out
}
