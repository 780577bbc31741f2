package detect

import "strings"

// gemfile is what detection reads from Gemfile and Gemfile.lock.
type gemfile struct {
	gems map[string]bool
	ruby string
}

// parseGemfile reads gem and ruby lines of a Gemfile and the specs and RUBY
// VERSION of its lock. Line by line, no regexp: these files can be long.
func parseGemfile(gemfileData, lockData []byte) gemfile {
	g := gemfile{gems: map[string]bool{}}
	for _, line := range strings.Split(string(gemfileData), "\n") {
		line = strings.TrimSpace(line)
		if name, ok := rubyCallArg(line, "gem"); ok {
			g.gems[name] = true
		} else if v, ok := rubyCallArg(line, "ruby"); ok && g.ruby == "" && len(v) <= 32 {
			g.ruby = v
		}
	}
	lines := strings.Split(string(lockData), "\n")
	for i, line := range lines {
		// Specs are indented four spaces: "    rails (7.1.3)".
		if rest, ok := strings.CutPrefix(line, "    "); ok && rest != "" && rest[0] != ' ' {
			if name, _, ok := strings.Cut(rest, " ("); ok {
				g.gems[name] = true
			}
		}
		if strings.TrimSpace(line) == "RUBY VERSION" && i+1 < len(lines) && g.ruby == "" {
			if v, ok := strings.CutPrefix(strings.TrimSpace(lines[i+1]), "ruby "); ok {
				v, _, _ = strings.Cut(v, "p")
				g.ruby = v
			}
		}
	}
	return g
}

// rubyCallArg reads the first string argument of `fn "arg"` or `fn('arg')`.
func rubyCallArg(line, fn string) (string, bool) {
	rest, ok := strings.CutPrefix(line, fn)
	if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '(' && rest[0] != '\t') {
		return "", false
	}
	rest = strings.TrimLeft(rest, " \t(")
	if rest == "" || (rest[0] != '"' && rest[0] != '\'') {
		return "", false
	}
	end := strings.IndexByte(rest[1:], rest[0])
	if end <= 0 {
		return "", false
	}
	return rest[1 : end+1], true
}

func (d *detection) detectRuby() *candidate {
	t := d.t
	if !t.isFile("Gemfile") {
		return nil
	}
	c := &candidate{language: "ruby", nixpacks: true, pm: "bundler"}
	gf, ok := t.manifest("Gemfile")
	lock, _ := t.manifest("Gemfile.lock")
	if t.isFile("Gemfile.lock") {
		c.lockfile = "Gemfile.lock"
	}
	d.addf("Gemfile -> bundler")
	if !ok {
		c.tier = tierMalformed
		return c
	}
	g := parseGemfile(gf, lock)

	if data, ok := t.manifest(".ruby-version"); ok {
		c.setVersion("ruby", strings.TrimPrefix(firstLine(data), "ruby-"), ".ruby-version", d)
	}
	c.setVersion("ruby", g.ruby, "Gemfile ruby", d)
	c.setVersion("ruby", d.toolVersions()["ruby"], ".tool-versions", d)

	appRb, _ := t.source("config/application.rb")
	switch {
	case g.gems["rails"] || g.gems["railties"] || strings.Contains(string(appRb), "Rails::Application"):
		c.framework, c.tier = "rails", tierFramework
		d.addf("Gemfile lists rails -> rails")
		// Nixpacks: "rails server -b 0.0.0.0 -p ${PORT:-3000}"; rails server
		// and the generated config/puma.rb also read PORT, else 3000.
		c.serve = frameworkDefault(3000, true, "rails server")
		c.own = c.serve
	case g.gems["sinatra"]:
		c.framework, c.tier = "sinatra", tierFramework
		d.addf("Gemfile lists sinatra -> sinatra")
		// Sinatra's built-in server: set :port, else $PORT, else 4567.
		c.own = frameworkDefault(4567, true, "Sinatra")
		if l, ok := d.scanFirst("app.rb", "server.rb", "main.rb", "config.ru"); ok {
			c.own = l
		}
	default:
		c.framework, c.tier = "ruby", tierLanguage
	}
	if c.framework != "rails" {
		// Nixpacks: config.ru runs "rackup config.ru -p ${PORT:-3000}".
		if t.isFile("config.ru") {
			c.serve = frameworkDefault(3000, true, "Nixpacks' rackup -p ${PORT:-3000}")
		} else {
			c.serve = c.own
		}
	}
	return c
}
