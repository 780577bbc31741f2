package detect

import "regexp"

var (
	reMixDep    = regexp.MustCompile(`\{\s*:([a-z0-9_]+)\s*,`)
	reMixElixir = regexp.MustCompile(`\belixir:\s*"([^"]{1,32})"`)
)

// mixExs is what detection reads from mix.exs.
type mixExs struct {
	deps   map[string]bool
	elixir string
}

func parseMixExs(data []byte) mixExs {
	m := mixExs{deps: map[string]bool{}}
	for _, dep := range reMixDep.FindAllSubmatch(data, -1) {
		m.deps[string(dep[1])] = true
	}
	if v := reMixElixir.FindSubmatch(data); v != nil {
		m.elixir = string(v[1])
	}
	return m
}

func (d *detection) detectElixir() *candidate {
	t := d.t
	if !t.isFile("mix.exs") {
		return nil
	}
	c := &candidate{language: "elixir", framework: "elixir", tier: tierLanguage, nixpacks: true, pm: "mix"}
	if t.isFile("mix.lock") {
		c.lockfile = "mix.lock"
	}
	d.addf("mix.exs -> mix")
	data, ok := t.manifest("mix.exs")
	if !ok {
		c.framework, c.tier = "", tierMalformed
		return c
	}
	mix := parseMixExs(data)
	c.setVersion("elixir", mix.elixir, "mix.exs elixir", d)
	c.setVersion("elixir", d.toolVersions()["elixir"], ".tool-versions", d)
	c.setVersion("erlang", d.toolVersions()["erlang"], ".tool-versions", d)
	if mix.deps["phoenix"] {
		c.framework, c.tier = "phoenix", tierFramework
		d.addf("mix.exs depends on :phoenix -> phoenix")
		// The generated config/runtime.exs reads PORT, else 4000.
		c.own = frameworkDefault(4000, true, "Phoenix's config/runtime.exs")
		if l, ok := d.scanFirst("config/runtime.exs", "config/prod.exs"); ok {
			c.own = l
		}
	}
	c.serve = c.own
	return c
}
