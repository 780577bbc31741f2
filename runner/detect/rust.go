package detect

import (
	"fmt"
	"strings"
)

// cargoToml is what detection reads from Cargo.toml.
type cargoToml struct {
	name        string
	rustVersion string
	deps        map[string]bool
	members     []string
}

func parseCargoToml(data []byte) (cargoToml, error) {
	m, err := decodeTOML(data)
	if err != nil {
		return cargoToml{}, err
	}
	c := cargoToml{deps: map[string]bool{}}
	c.name = tomlString(m, "package", "name")
	c.rustVersion = tomlString(m, "package", "rust-version")
	for _, table := range [][]string{{"dependencies"}, {"workspace", "dependencies"}} {
		for k := range tomlTable(m, table...) {
			c.deps[k] = true
		}
	}
	c.members = anyStrings(tomlTable(m, "workspace")["members"])
	return c, nil
}

func (d *detection) detectRust() *candidate {
	t := d.t
	if !t.isFile("Cargo.toml") {
		return nil
	}
	c := &candidate{language: "rust", framework: "rust", tier: tierLanguage, nixpacks: true, pm: "cargo"}
	if t.isFile("Cargo.lock") {
		c.lockfile = "Cargo.lock"
	}
	d.addf("Cargo.toml -> cargo")
	data, ok := t.manifest("Cargo.toml")
	if !ok {
		c.framework, c.tier = "", tierMalformed
		return c
	}
	cargo, err := parseCargoToml(data)
	if err != nil {
		d.addf("Cargo.toml: %v -> cannot tell the framework", err)
		c.framework, c.tier = "", tierMalformed
		return c
	}
	if len(cargo.members) > 0 {
		d.addf("Cargo workspace with members %s", joinFirst(cargo.members, 8))
	}
	if tc, ok := t.manifest("rust-toolchain.toml"); ok {
		if m, err := decodeTOML(tc); err == nil {
			c.setVersion("rust", tomlString(m, "toolchain", "channel"), "rust-toolchain.toml", d)
		}
	}
	if tc, ok := t.manifest("rust-toolchain"); ok {
		line := firstLine(tc)
		if strings.Contains(line, "[toolchain]") || strings.Contains(line, "=") {
			if m, err := decodeTOML(tc); err == nil {
				line = tomlString(m, "toolchain", "channel")
			}
		}
		c.setVersion("rust", line, "rust-toolchain", d)
	}
	c.setVersion("rust", cargo.rustVersion, "Cargo.toml rust-version", d)

	for _, fw := range []struct{ dep, label string }{{"actix-web", "actix"}, {"axum", "axum"}, {"rocket", "rocket"}} {
		if cargo.deps[fw.dep] {
			c.framework, c.tier = fw.label, tierFramework
			d.addf("Cargo.toml depends on %s -> %s", fw.dep, fw.label)
			break
		}
	}
	if l, ok := d.scanFirst("src/main.rs"); ok && c.framework != "rocket" {
		c.own = l
	}
	switch c.framework {
	case "rocket":
		// Rocket reads ROCKET_PORT and Rocket.toml, never PORT: else 8000.
		c.own = frameworkDefault(8000, false, "Rocket")
		if rt, ok := t.manifest("Rocket.toml"); ok {
			if m, err := decodeTOML(rt); err == nil {
				for _, profile := range []string{"release", "global", "default"} {
					if p, ok := tomlTable(m, profile)["port"].(int64); ok && p > 0 && p < 65536 {
						c.own = fixed(int(p), fmt.Sprintf("Rocket.toml [%s] port", profile))
						break
					}
				}
			}
		}
	case "actix", "axum":
		if !c.own.known() {
			// No default port; PaaS-ready servers read PORT.
			c.own = listen{readsPORT: true, reader: c.framework + " app", assumed: true}
		}
	}
	c.serve = c.own
	return c
}
