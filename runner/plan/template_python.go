package plan

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// python: a virtualenv at /venv built in one stage (lockfile first, the
// package manager's cache in a cache mount) and copied into the runtime.
func (b *tbuild) python() error {
	r, df, d := b.repo, b.df, b.src.Detected
	b.rec.Template = "python"
	image := b.image("python", d.Versions["python"], 2)
	b.rec.BaseImage, b.rec.RuntimeImage = image, image
	pip := cache{name: "pip", target: "/root/.cache/pip"}

	start, needs, err := b.pythonStart()
	if err != nil {
		return err
	}

	b.header()
	df.from(image, "build")
	df.env("PIP_DISABLE_PIP_VERSION_CHECK", "1", "PYTHONDONTWRITEBYTECODE", "1", "VIRTUAL_ENV", "/venv", "PATH", "/venv/bin:$PATH")
	// Packages the base image already has count as installed, so an image
	// with distribution packages (a mirror's stand-in) needs no index.
	df.run("python3 -m venv --system-site-packages /venv")
	df.line("WORKDIR /app")
	mounts := []cache{pip}
	installAfterSource := ""
	switch d.PackageManager {
	case "pip":
		if r.isFile("requirements.txt") {
			// requirements files may include each other (-r base.txt).
			files := r.files(".", "requirements*.txt")
			df.copy("", files, "./")
			if r.isDir("requirements") {
				df.copy("", []string{"requirements"}, "./requirements")
			}
			b.rec.Install = "pip install -r requirements.txt"
			if b.requiresLocalPath(files) {
				// "-e ." needs the source: install once it is there.
				installAfterSource = b.rec.Install
			} else {
				df.run(b.rec.Install, pip)
			}
		} else {
			// pyproject.toml without a lockfile: the project itself is the install.
			b.rec.Install = "pip install ."
			installAfterSource = b.rec.Install
		}
	case "poetry":
		poetry := cache{name: "poetry", target: "/root/.cache/pypoetry"}
		mounts = append(mounts, poetry)
		df.run(`python3 -m venv /opt/poetry && /opt/poetry/bin/pip install "poetry>=1.8,<3"`, pip)
		df.copy("", []string{"pyproject.toml", "poetry.lock"}, "./")
		b.rec.Install = "poetry install --only main --no-root --no-interaction"
		df.run("/opt/poetry/bin/"+b.rec.Install, pip, poetry)
	case "uv":
		uv := cache{name: "uv", target: "/root/.cache/uv"}
		mounts = append(mounts, uv)
		df.env("UV_PROJECT_ENVIRONMENT", "/venv", "UV_LINK_MODE", "copy", "UV_COMPILE_BYTECODE", "1")
		// The tools live in venvs of their own, so /venv holds only the app's packages.
		df.run("python3 -m venv /opt/uv && /opt/uv/bin/pip install uv", pip)
		df.copy("", []string{"pyproject.toml", "uv.lock"}, "./")
		b.rec.Install = "uv sync --frozen --no-dev --no-install-project"
		df.run("/opt/uv/bin/"+b.rec.Install, uv)
		installAfterSource = "/opt/uv/bin/uv sync --frozen --no-dev"
	case "pipenv":
		if !r.isFile("Pipfile.lock") {
			return noTemplate("Pipfile without Pipfile.lock: lock it (pipenv lock) so the install is reproducible")
		}
		df.run("python3 -m venv /opt/pipenv && /opt/pipenv/bin/pip install pipenv", pip)
		df.copy("", []string{"Pipfile", "Pipfile.lock"}, "./")
		b.rec.Install = "pipenv requirements > /tmp/requirements.txt && pip install -r /tmp/requirements.txt"
		df.run("/opt/pipenv/bin/"+b.rec.Install, pip)
	default:
		return noTemplate("no template for the %s package manager", nonEmpty(d.PackageManager, "unknown"))
	}
	for _, n := range needs {
		df.run("pip show "+n+" >/dev/null 2>&1 || pip install "+n, pip)
	}
	df.copy("", []string{"."}, "./")
	if installAfterSource != "" {
		df.run(installAfterSource, mounts...)
	}
	b.buildStep("", mounts...)
	df.blank()

	df.from(image, "")
	df.env("VIRTUAL_ENV", "/venv", "PATH", "/venv/bin:$PATH", "PYTHONUNBUFFERED", "1", "PYTHONDONTWRITEBYTECODE", "1")
	df.line("WORKDIR /app")
	df.copyFrom("build", []string{"/venv"}, "/venv")
	df.copyFrom("build", []string{"/app"}, "/app")
	b.start(b.startCommand(start))
	return nil
}

// pythonStart is the template's start command per framework and the servers
// it needs installed when the app does not list them.
func (b *tbuild) pythonStart() (string, []string, error) {
	d := b.src.Detected
	if b.src.StartCommand != "" || d.StartCommand != "" {
		return "", nil, nil
	}
	switch d.Framework {
	case "django":
		mod := b.djangoWSGI()
		if mod == "" {
			return "", nil, noTemplate("Django app whose WSGI module was not found (no <project>/wsgi.py named by manage.py)")
		}
		// gunicorn binds 0.0.0.0:$PORT when PORT is set.
		return "gunicorn " + mod, []string{"gunicorn"}, nil
	case "fastapi":
		app := b.pyApp(`(\w+)\s*(?::[^=]*)?=\s*FastAPI\(`)
		if app == "" {
			return "", nil, noTemplate("FastAPI app whose module was not found (main.py, app.py, app/main.py with app = FastAPI())")
		}
		// uvicorn ignores PORT: the shell passes it.
		return `exec uvicorn ` + app + ` --host 0.0.0.0 --port "$PORT"`, []string{"uvicorn"}, nil
	case "flask":
		app := b.pyApp(`(\w+)\s*(?::[^=]*)?=\s*Flask\(`)
		if app == "" {
			return "", nil, noTemplate("Flask app whose module was not found (app.py, main.py, wsgi.py with app = Flask(...))")
		}
		return "gunicorn " + app, []string{"gunicorn"}, nil
	}
	if f := b.repo.firstFile("main.py", "app.py", "server.py"); f != "" {
		return "python3 " + f, nil, nil
	}
	return "", nil, noTemplate("a Python app with nothing to start: add a Procfile or set START_COMMAND")
}

var localRequirement = regexp.MustCompile(`(?m)^\s*(-e\s+|--editable\s+)?(\.|file:)`)

// requiresLocalPath reports whether a requirements file installs from the
// repository itself (-e ., ./lib, file:...).
func (b *tbuild) requiresLocalPath(files []string) bool {
	for _, f := range files {
		if data, ok := b.repo.read(f); ok && localRequirement.Match(data) {
			return true
		}
	}
	return false
}

var djangoSettings = regexp.MustCompile(`DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([A-Za-z_][\w.]*)\.settings`)

// djangoWSGI is the WSGI module manage.py's settings module sits beside.
func (b *tbuild) djangoWSGI() string {
	if data, ok := b.repo.read("manage.py"); ok {
		if m := djangoSettings.FindSubmatch(data); m != nil {
			pkg := string(m[1])
			if b.repo.isFile(strings.ReplaceAll(pkg, ".", "/") + "/wsgi.py") {
				return pkg + ".wsgi"
			}
		}
	}
	return ""
}

// pyApp finds the module:variable of the app object.
func (b *tbuild) pyApp(pattern string) string {
	re := regexp.MustCompile(`(?m)^` + pattern)
	for _, f := range []string{"main.py", "app.py", "server.py", "wsgi.py", "asgi.py", "app/main.py", "app/__init__.py", "src/main.py", "src/app.py"} {
		data, ok := b.repo.read(f)
		if !ok {
			continue
		}
		if m := re.FindSubmatch(data); m != nil {
			mod := strings.TrimSuffix(f, ".py")
			mod = strings.TrimSuffix(mod, "/__init__")
			return fmt.Sprintf("%s:%s", strings.ReplaceAll(path.Clean(mod), "/", "."), m[1])
		}
	}
	return ""
}
