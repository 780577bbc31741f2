package detect

import (
	"regexp"
	"strconv"
	"strings"
)

var (
	reTargetFramework = regexp.MustCompile(`<TargetFrameworks?>\s*net(?:coreapp)?(\d+\.\d+)`)
	reWebSdk          = regexp.MustCompile(`Sdk\s*=\s*"Microsoft\.NET\.Sdk\.(?:Web|Razor|BlazorWebAssembly)"`)
)

func (d *detection) detectDotnet() *candidate {
	t := d.t
	projects := t.rootFilesWithSuffix(".csproj", ".fsproj", ".vbproj")
	if len(projects) == 0 {
		return nil
	}
	proj := projects[0]
	c := &candidate{language: "dotnet", framework: "dotnet", tier: tierLanguage, nixpacks: true, pm: "nuget"}
	if t.isFile("packages.lock.json") {
		c.lockfile = "packages.lock.json"
	}
	d.addf("%s -> dotnet", proj)
	if len(projects) > 1 {
		d.addf("several project files (%s): Nixpacks builds %s", joinFirst(projects, 5), proj)
	}
	if data, ok := t.manifest("global.json"); ok {
		if m, err := decodeJSONObject(data); err == nil {
			if sdk, ok := m["sdk"].(map[string]any); ok {
				v, _ := sdk["version"].(string)
				c.setVersion("dotnet", v, "global.json sdk.version", d)
			}
		}
	}
	data, ok := t.manifest(proj)
	if !ok {
		return c
	}
	target := ""
	if m := reTargetFramework.FindSubmatch(data); m != nil {
		target = string(m[1])
		c.setVersion("dotnet", target, proj+" TargetFramework", d)
	}
	if !reWebSdk.Match(data) {
		return c
	}
	c.tier = tierFramework
	d.addf("%s uses the Web SDK: an ASP.NET Core app", proj)
	// Nixpacks sets ASPNETCORE_URLS=http://0.0.0.0:3000, which beats PORT.
	c.serve = fixed(3000, "Nixpacks' ASPNETCORE_URLS=http://0.0.0.0:3000")
	// ASP.NET Core images listen on 8080 since .NET 8 (ASPNETCORE_HTTP_PORTS), on 80 before.
	if major, err := strconv.Atoi(strings.Split(target, ".")[0]); err == nil && major < 8 {
		c.own = frameworkDefault(80, false, "ASP.NET Core image before .NET 8")
	} else {
		c.own = frameworkDefault(8080, false, "ASP.NET Core image")
	}
	return c
}
