package detect

func (d *detection) detectStatic() *candidate {
	t := d.t
	index := t.firstFile("index.html", "public/index.html", "dist/index.html")
	if index == "" && !t.isFile("Staticfile") {
		return nil
	}
	d.addf("%s -> static site", nonEmpty(index, "Staticfile"))
	return &candidate{
		language: "html", framework: "static", tier: tierStatic, nixpacks: true,
		// Nixpacks' nginx rewrites its listen port to $PORT at start, else 80.
		serve: frameworkDefault(80, true, "Nixpacks' nginx for static sites"),
		own:   frameworkDefault(80, false, "nginx"),
	}
}
