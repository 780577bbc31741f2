package detect

import (
	"path"
	"regexp"
	"strings"
)

// pyName is the distribution name at the start of a requirement (PEP 508).
var pyName = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)`)

// normalizePyName folds names the way pip compares them (PEP 503).
func normalizePyName(s string) string {
	s = strings.ToLower(s)
	return strings.NewReplacer("_", "-", ".", "-").Replace(s)
}

// parseRequirements returns the package names a requirements file asks for
// and the files it includes with -r.
func parseRequirements(data []byte) (names, includes []string) {
	text := strings.ReplaceAll(string(data), "\\\r\n", "")
	text = strings.ReplaceAll(text, "\\\n", "")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		// A comment starts at a # that begins the line or follows whitespace;
		// "#egg=" inside a URL is not one.
		if i := strings.Index(line, " #"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "-") {
			flag, val, _ := strings.Cut(line, " ")
			if f, v, ok := strings.Cut(flag, "="); ok {
				flag, val = f, v
			}
			val = strings.TrimSpace(val)
			switch flag {
			case "-r", "--requirement":
				if val != "" {
					includes = append(includes, val)
				}
			case "-e", "--editable":
				if _, egg, ok := strings.Cut(val, "#egg="); ok {
					if m := pyName.FindString(egg); m != "" {
						names = append(names, normalizePyName(m))
					}
				}
			}
			continue
		}
		if _, egg, ok := strings.Cut(line, "#egg="); ok && strings.Contains(line, "://") {
			if m := pyName.FindString(egg); m != "" {
				names = append(names, normalizePyName(m))
			}
			continue
		}
		if m := pyName.FindString(line); m != "" {
			names = append(names, normalizePyName(m))
		}
	}
	return names, includes
}

// pyproject is what detection reads from pyproject.toml.
type pyproject struct {
	deps           []string
	requiresPython string
	poetryPython   string
	poetry, pdm    bool
	uv             bool
	scripts        bool
}

func parsePyproject(data []byte) (pyproject, error) {
	m, err := decodeTOML(data)
	if err != nil {
		return pyproject{}, err
	}
	var p pyproject
	proj := tomlTable(m, "project")
	for _, req := range anyStrings(proj["dependencies"]) {
		if n := pyName.FindString(strings.TrimSpace(req)); n != "" {
			p.deps = append(p.deps, normalizePyName(n))
		}
	}
	p.requiresPython, _ = proj["requires-python"].(string)
	if s, ok := proj["scripts"].(map[string]any); ok && len(s) > 0 {
		p.scripts = true
	}
	if poetry := tomlTable(m, "tool", "poetry"); poetry != nil {
		p.poetry = true
		deps := tomlTable(poetry, "dependencies")
		for _, k := range sortedKeys(deps) {
			if k == "python" {
				p.poetryPython, _ = deps[k].(string)
				continue
			}
			p.deps = append(p.deps, normalizePyName(k))
		}
		if s, ok := poetry["scripts"].(map[string]any); ok && len(s) > 0 {
			p.scripts = true
		}
	}
	p.pdm = tomlTable(m, "tool", "pdm") != nil
	p.uv = tomlTable(m, "tool", "uv") != nil
	return p, nil
}

// pipfile is what detection reads from a Pipfile.
type pipfile struct {
	deps   []string
	python string
}

func parsePipfile(data []byte) (pipfile, error) {
	m, err := decodeTOML(data)
	if err != nil {
		return pipfile{}, err
	}
	var p pipfile
	for _, k := range sortedKeys(tomlTable(m, "packages")) {
		p.deps = append(p.deps, normalizePyName(k))
	}
	p.python = nonEmpty(tomlString(m, "requires", "python_full_version"), tomlString(m, "requires", "python_version"))
	return p, nil
}

// maxRequirementFiles bounds -r chains (requirements/prod.txt -> base.txt ...).
const maxRequirementFiles = 8

// requirementNames follows first and its includes; ok is whether first itself was readable.
func (d *detection) requirementNames(first string) (names []string, ok bool) {
	seen := map[string]bool{}
	queue := []string{first}
	for len(queue) > 0 && len(seen) < maxRequirementFiles {
		f := queue[0]
		queue = queue[1:]
		if seen[f] {
			continue
		}
		seen[f] = true
		data, readable := d.t.manifest(f)
		if !readable {
			continue
		}
		ok = ok || f == first
		n, inc := parseRequirements(data)
		names = append(names, n...)
		for _, i := range inc {
			p := path.Clean(path.Join(path.Dir(f), i))
			if !strings.HasPrefix(p, "../") && p != ".." && !path.IsAbs(p) {
				queue = append(queue, p)
			}
		}
	}
	return names, ok
}

func (d *detection) detectPython() *candidate {
	t := d.t
	hasReq, hasPyproject, hasPipfile := t.isFile("requirements.txt"), t.isFile("pyproject.toml"), t.isFile("Pipfile")
	hasMain, hasManage := t.isFile("main.py"), t.isFile("manage.py")
	if !hasReq && !hasPyproject && !hasPipfile && !hasMain && !hasManage && !t.isFile("setup.py") {
		return nil
	}
	c := &candidate{language: "python", nixpacks: hasReq || hasPyproject || hasPipfile || hasMain}
	deps := map[string]string{}
	add := func(names []string, from string) {
		for _, n := range names {
			if _, ok := deps[n]; !ok {
				deps[n] = from
			}
		}
	}
	// readable counts the manifests that parsed; when none did, the
	// framework cannot be told.
	readable := 0
	if hasReq {
		if names, ok := d.requirementNames("requirements.txt"); ok {
			add(names, "requirements.txt")
			readable++
		}
	}
	var pp pyproject
	if hasPyproject {
		if data, ok := t.manifest("pyproject.toml"); ok {
			var err error
			if pp, err = parsePyproject(data); err != nil {
				d.addf("pyproject.toml: %v, ignored", err)
			} else {
				add(pp.deps, "pyproject.toml")
				readable++
			}
		}
	}
	var pf pipfile
	if hasPipfile {
		if data, ok := t.manifest("Pipfile"); ok {
			var err error
			if pf, err = parsePipfile(data); err != nil {
				d.addf("Pipfile: %v, ignored", err)
			} else {
				add(pf.deps, "Pipfile")
				readable++
			}
		}
	}

	// Package manager as Nixpacks installs: requirements.txt wins outright.
	switch {
	case hasReq:
		c.pm, c.lockfile = "pip", "requirements.txt"
		d.addf("requirements.txt -> pip")
		if hasPyproject {
			d.addf("requirements.txt and pyproject.toml both present: pip installs requirements.txt only, as Nixpacks does")
		}
	case hasPyproject && t.isFile("poetry.lock"):
		c.pm, c.lockfile = "poetry", "poetry.lock"
		d.addf("pyproject.toml with poetry.lock -> poetry")
	case hasPyproject && t.isFile("pdm.lock"):
		c.pm, c.lockfile = "pdm", "pdm.lock"
		d.addf("pyproject.toml with pdm.lock -> pdm")
	case hasPyproject && t.isFile("uv.lock"):
		c.pm, c.lockfile = "uv", "uv.lock"
		d.addf("pyproject.toml with uv.lock -> uv")
	case hasPyproject:
		c.pm = "pip"
		d.addf("pyproject.toml without a lockfile -> pip install ., as Nixpacks does")
	case hasPipfile:
		c.pm = "pipenv"
		if t.isFile("Pipfile.lock") {
			c.lockfile = "Pipfile.lock"
		}
		d.addf("Pipfile -> pipenv")
	}

	if data, ok := t.manifest(".python-version"); ok {
		c.setVersion("python", firstLine(data), ".python-version", d)
	}
	if data, ok := t.manifest("runtime.txt"); ok {
		c.setVersion("python", strings.TrimPrefix(firstLine(data), "python-"), "runtime.txt", d)
	}
	c.setVersion("python", pf.python, "Pipfile [requires]", d)
	c.setVersion("python", d.toolVersions()["python"], ".tool-versions", d)
	c.setVersion("python", pp.requiresPython, "pyproject.toml requires-python", d)
	c.setVersion("python", pp.poetryPython, "pyproject.toml tool.poetry.dependencies.python", d)

	manageIsDjango := false
	if hasManage {
		if data, ok := t.source("manage.py"); ok && strings.Contains(strings.ToLower(string(data)), "django") {
			manageIsDjango = true
		}
	}
	entry := t.firstFile("main.py", "app.py", "server.py", "run.py", "wsgi.py", "asgi.py", "app/main.py", "src/main.py")
	_, django := deps["django"]
	switch {
	case django || manageIsDjango:
		c.framework, c.tier = "django", tierFramework
		if django {
			d.addf("%s lists django -> django", deps["django"])
		} else {
			d.addf("manage.py imports django -> django")
		}
		// Nixpacks starts Django with "python manage.py migrate && gunicorn <app>.wsgi".
		if hasManage {
			c.serve = frameworkDefault(8000, true, "gunicorn in Nixpacks' Django start command")
		}
		c.own = frameworkDefault(8000, false, "manage.py runserver") // runserver ignores $PORT: 8000
	case deps["fastapi"] != "":
		c.framework, c.tier = "fastapi", tierFramework
		d.addf("%s lists fastapi -> fastapi", deps["fastapi"])
		c.own = frameworkDefault(8000, false, "uvicorn") // uvicorn ignores $PORT: --port, else 8000
	case deps["flask"] != "":
		c.framework, c.tier = "flask", tierFramework
		d.addf("%s lists flask -> flask", deps["flask"])
		c.own = frameworkDefault(5000, false, "flask run / app.run()") // Flask ignores $PORT: 5000
	default:
		c.framework, c.tier = "python", tierLanguage
		if entry == "" && !hasManage && !pp.scripts && !t.isFile("Procfile") {
			c.tier = tierManifestOnly
			d.addf("no main.py, app.py or Procfile: nothing to run")
		}
	}
	if readable == 0 && (hasReq || hasPyproject || hasPipfile) && !manageIsDjango {
		c.framework, c.tier = "", tierMalformed
		return c
	}
	// Nixpacks runs main.py when it is not Django; for the app's own default
	// the likeliest entry file tells.
	if !c.serve.known() && hasMain {
		if l, ok := d.scanFile("main.py"); ok {
			c.serve = l
		}
	}
	if entry != "" {
		if l, ok := d.scanFile(entry); ok && c.framework != "django" {
			c.own = l
		}
	}
	if !c.serve.known() {
		c.serve = c.own
	}
	return c
}
