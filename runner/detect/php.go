package detect

// composerJSON is what detection reads from composer.json.
type composerJSON struct {
	require map[string]string
	all     map[string]string // require and require-dev
}

func parseComposerJSON(data []byte) (composerJSON, error) {
	m, err := decodeJSONObject(data)
	if err != nil {
		return composerJSON{}, err
	}
	c := composerJSON{require: map[string]string{}, all: map[string]string{}}
	for _, key := range []string{"require", "require-dev"} {
		reqs, _ := m[key].(map[string]any)
		for name, v := range reqs {
			s, _ := v.(string)
			if key == "require" {
				c.require[name] = s
			}
			c.all[name] = s
		}
	}
	return c, nil
}

func (d *detection) detectPHP() *candidate {
	t := d.t
	hasComposer, hasIndex := t.isFile("composer.json"), t.isFile("index.php")
	if !hasComposer && !hasIndex {
		return nil
	}
	c := &candidate{language: "php", nixpacks: true, framework: "php", tier: tierLanguage}
	var comp composerJSON
	if hasComposer {
		c.pm = "composer"
		if t.isFile("composer.lock") {
			c.lockfile = "composer.lock"
		}
		d.addf("composer.json -> composer")
		data, ok := t.manifest("composer.json")
		var err error
		if ok {
			comp, err = parseComposerJSON(data)
		}
		if !ok || err != nil {
			if err != nil {
				d.addf("composer.json: %v -> cannot tell the framework", err)
			}
			if !hasIndex {
				c.framework, c.tier = "", tierMalformed
				return c
			}
		}
	}
	c.setVersion("php", comp.require["php"], "composer.json require.php", d)
	_, laravel := comp.all["laravel/framework"]
	_, symfony := comp.all["symfony/framework-bundle"]
	switch {
	case laravel || t.isFile("artisan"):
		c.framework, c.tier = "laravel", tierFramework
		if laravel {
			d.addf("composer.json requires laravel/framework -> laravel")
		} else {
			d.addf("artisan -> laravel")
		}
		c.own = frameworkDefault(8000, false, "php artisan serve") // artisan serve ignores $PORT: 8000
	case symfony:
		c.framework, c.tier = "symfony", tierFramework
		d.addf("composer.json requires symfony/framework-bundle -> symfony")
		c.own = frameworkDefault(80, false, "PHP web server") // php:apache and nginx images listen on 80
	default:
		if hasIndex {
			d.addf("index.php -> php")
		}
		c.own = frameworkDefault(80, false, "PHP web server") // php:apache and nginx images listen on 80
	}
	// Nixpacks runs PHP behind its nginx, whose config listens on ${PORT}
	// (80 unless the runner sets PORT).
	c.serve = frameworkDefault(80, true, "Nixpacks' nginx for PHP")
	return c
}
