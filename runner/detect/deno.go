package detect

// denoJSON is what detection reads from deno.json or deno.jsonc.
type denoJSON struct {
	startTask string
}

func parseDenoJSON(data []byte) (denoJSON, error) {
	m, err := decodeJSONObject(stripJSONComments(data))
	if err != nil {
		return denoJSON{}, err
	}
	var dj denoJSON
	if tasks, ok := m["tasks"].(map[string]any); ok {
		switch start := tasks["start"].(type) {
		case string:
			dj.startTask = start
		case map[string]any:
			// Deno 2 task objects: {"command": "...", "description": "..."}.
			dj.startTask, _ = start["command"].(string)
		}
	}
	return dj, nil
}

func (d *detection) detectDeno() *candidate {
	t := d.t
	name := t.firstFile("deno.json", "deno.jsonc")
	if name == "" {
		return nil
	}
	c := &candidate{language: "deno", framework: "deno", tier: tierLanguage, nixpacks: true, pm: "deno"}
	if t.isFile("deno.lock") {
		c.lockfile = "deno.lock"
	}
	d.addf("%s -> deno", name)
	data, ok := t.manifest(name)
	if !ok {
		c.framework, c.tier = "", tierMalformed
		return c
	}
	dj, err := parseDenoJSON(data)
	if err != nil {
		d.addf("%s: %v -> cannot tell how it starts", name, err)
		c.framework, c.tier = "", tierMalformed
		return c
	}
	c.setVersion("deno", d.toolVersions()["deno"], ".tool-versions", d)
	if dj.startTask != "" {
		c.own = d.analyzeCommand(dj.startTask, name+" tasks.start")
		if c.own.known() {
			d.addf("%s tasks.start %q: %s", name, dj.startTask, describeListen(c.own))
		}
	}
	if !c.own.known() {
		if l, ok := d.scanFirst("index.ts", "main.ts", "mod.ts", "server.ts", "src/main.ts", "main.js", "index.js"); ok {
			c.own = l
		}
	}
	if !c.own.known() {
		c.own = frameworkDefault(8000, false, "Deno.serve") // Deno.serve and deno serve ignore PORT: 8000
	}
	c.serve = c.own
	return c
}
