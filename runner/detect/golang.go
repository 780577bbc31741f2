package detect

import (
	"path"
	"strings"
)

// goMod is what detection reads from go.mod.
type goMod struct {
	module    string
	goVersion string
	toolchain string
	requires  []string
}

// parseGoMod reads the directives detection needs. It is a line reader, not
// the go command's parser: unknown lines are skipped, never an error.
func parseGoMod(data []byte) goMod {
	var m goMod
	inRequire := false
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if inRequire {
			if f[0] == ")" {
				inRequire = false
			} else {
				m.requires = append(m.requires, strings.Trim(f[0], `"`))
			}
			continue
		}
		switch f[0] {
		case "module":
			if len(f) > 1 {
				m.module = strings.Trim(f[1], `"`)
			}
		case "go":
			if len(f) > 1 {
				m.goVersion = f[1]
			}
		case "toolchain":
			if len(f) > 1 {
				m.toolchain = strings.TrimPrefix(f[1], "go")
			}
		case "require":
			switch {
			case len(f) > 1 && f[1] == "(":
				inRequire = true
			case len(f) > 1:
				m.requires = append(m.requires, strings.Trim(f[1], `"`))
			}
		}
	}
	return m
}

// goFrameworks maps module paths (and their /vN majors) to labels.
var goFrameworks = []struct{ module, label string }{
	{"github.com/gin-gonic/gin", "gin"},
	{"github.com/labstack/echo", "echo"},
	{"github.com/gofiber/fiber", "fiber"},
	{"github.com/go-chi/chi", "chi"},
}

func goFramework(requires []string) (label, module string) {
	for _, fw := range goFrameworks {
		for _, r := range requires {
			if r == fw.module || strings.HasPrefix(r, fw.module+"/v") {
				return fw.label, r
			}
		}
	}
	return "", ""
}

func (d *detection) detectGo() *candidate {
	t := d.t
	hasMod, hasMain := t.isFile("go.mod"), t.isFile("main.go")
	if !hasMod && !hasMain {
		return nil
	}
	c := &candidate{language: "go", framework: "go", tier: tierLanguage, nixpacks: true, pm: "go"}
	var mod goMod
	if hasMod {
		data, ok := t.manifest("go.mod")
		if !ok {
			c.tier = tierMalformed
			c.framework = ""
			return c
		}
		mod = parseGoMod(data)
		if t.isFile("go.sum") {
			c.lockfile = "go.sum"
		}
		d.addf("go.mod -> go modules")
		c.setVersion("go", mod.goVersion, "go.mod go directive", d)
		if mod.toolchain != "" {
			d.addf("go.mod toolchain %s", mod.toolchain)
		}
	} else {
		d.addf("main.go without go.mod -> go")
	}

	fw, module := goFramework(mod.requires)
	if fw != "" {
		c.framework, c.tier = fw, tierFramework
		d.addf("go.mod requires %s -> %s", module, fw)
	}
	files := []string{"main.go"}
	for _, e := range t.list("cmd") {
		if e.isDir && len(files) < 5 {
			files = append(files, path.Join("cmd", e.name, "main.go"))
		}
	}
	files = append(files, "server.go", "app.go")
	if l, ok := d.scanFirst(files...); ok {
		c.own = l
	} else {
		switch fw {
		case "gin":
			c.own = frameworkDefault(8080, true, "gin's Run()") // Run() with no address: $PORT, else 8080
		case "echo", "fiber", "chi":
			// No default port; PaaS-ready Go servers read PORT.
			c.own = listen{readsPORT: true, reader: fw + " app", assumed: true}
		}
	}
	c.serve = c.own
	return c
}
