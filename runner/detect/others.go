package detect

// The languages below are recognised by their manifest; none of them has a
// web framework default worth guessing, so their port comes from the code,
// a Procfile, or the Dockerfile.

func (d *detection) detectCrystal() *candidate {
	if !d.t.isFile("shard.yml") {
		return nil
	}
	d.addf("shard.yml -> crystal")
	c := &candidate{language: "crystal", framework: "crystal", tier: tierLanguage, nixpacks: true, pm: "shards"}
	if d.t.isFile("shard.lock") {
		c.lockfile = "shard.lock"
	}
	c.setVersion("crystal", d.toolVersions()["crystal"], ".tool-versions", d)
	return c
}

func (d *detection) detectDart() *candidate {
	if !d.t.isFile("pubspec.yaml") {
		return nil
	}
	d.addf("pubspec.yaml -> dart")
	c := &candidate{language: "dart", framework: "dart", tier: tierLanguage, nixpacks: true, pm: "pub"}
	if d.t.isFile("pubspec.lock") {
		c.lockfile = "pubspec.lock"
	}
	// dart create -t server-shelf reads PORT, else 8080.
	if l, ok := d.scanFirst("bin/server.dart", "bin/main.dart"); ok {
		c.own, c.serve = l, l
	}
	return c
}

func (d *detection) detectHaskell() *candidate {
	switch {
	case d.t.isFile("stack.yaml"):
		d.addf("stack.yaml -> haskell")
		c := &candidate{language: "haskell", framework: "haskell", tier: tierLanguage, nixpacks: true, pm: "stack"}
		if d.t.isFile("stack.yaml.lock") {
			c.lockfile = "stack.yaml.lock"
		}
		return c
	case len(d.t.rootFilesWithSuffix(".cabal")) > 0 || d.t.isFile("cabal.project"):
		d.addf("cabal project -> haskell")
		c := &candidate{language: "haskell", framework: "haskell", tier: tierLanguage, pm: "cabal"}
		if d.t.isFile("cabal.project.freeze") {
			c.lockfile = "cabal.project.freeze"
		}
		return c
	}
	return nil
}

func (d *detection) detectNim() *candidate {
	nimble := d.t.rootFilesWithSuffix(".nimble")
	if len(nimble) == 0 {
		return nil
	}
	d.addf("%s -> nim", nimble[0])
	return &candidate{language: "nim", framework: "nim", tier: tierLanguage, nixpacks: true, pm: "nimble"}
}

func (d *detection) detectSwift() *candidate {
	if !d.t.isFile("Package.swift") {
		return nil
	}
	d.addf("Package.swift -> swift")
	c := &candidate{language: "swift", framework: "swift", tier: tierLanguage, nixpacks: true, pm: "swiftpm"}
	if d.t.isFile("Package.resolved") {
		c.lockfile = "Package.resolved"
	}
	if data, ok := d.t.manifest("Package.swift"); ok && containsAny(string(data), "vapor/vapor") {
		c.framework, c.tier = "vapor", tierFramework
		d.addf("Package.swift depends on vapor -> vapor")
		// Vapor serves on --port or its configuration, never PORT: else 8080.
		c.own = frameworkDefault(8080, false, "Vapor")
		c.serve = c.own
	}
	return c
}

func (d *detection) detectZig() *candidate {
	if !d.t.isFile("build.zig") {
		return nil
	}
	d.addf("build.zig -> zig")
	c := &candidate{language: "zig", framework: "zig", tier: tierLanguage, nixpacks: true, pm: "zig"}
	c.setVersion("zig", d.toolVersions()["zig"], ".tool-versions", d)
	return c
}

func (d *detection) detectCobol() *candidate {
	files := d.t.rootFilesWithSuffix(".cbl", ".cob", ".CBL", ".COB")
	if len(files) == 0 {
		return nil
	}
	d.addf("%s -> cobol", files[0])
	return &candidate{language: "cobol", framework: "cobol", tier: tierLanguage, nixpacks: true}
}

func (d *detection) detectGleam() *candidate {
	if !d.t.isFile("gleam.toml") {
		return nil
	}
	d.addf("gleam.toml -> gleam")
	c := &candidate{language: "gleam", framework: "gleam", tier: tierLanguage, nixpacks: true, pm: "gleam"}
	if d.t.isFile("manifest.toml") {
		c.lockfile = "manifest.toml"
	}
	c.setVersion("gleam", d.toolVersions()["gleam"], ".tool-versions", d)
	return c
}

func (d *detection) detectErlang() *candidate {
	if !d.t.isFile("rebar.config") {
		return nil
	}
	d.addf("rebar.config -> erlang")
	c := &candidate{language: "erlang", framework: "erlang", tier: tierLanguage, pm: "rebar3"}
	if d.t.isFile("rebar.lock") {
		c.lockfile = "rebar.lock"
	}
	c.setVersion("erlang", d.toolVersions()["erlang"], ".tool-versions", d)
	return c
}

// detectShell recognises an app that is a start script and nothing else.
func (d *detection) detectShell() *candidate {
	if !d.t.isFile("start.sh") {
		return nil
	}
	d.addf("start.sh -> shell")
	c := &candidate{language: "shell", framework: "shell", tier: tierLanguage}
	if l, ok := d.scanFile("start.sh"); ok {
		c.own, c.serve = l, l
	}
	return c
}
