package detect

import (
	"regexp"
	"strings"
)

var (
	rePomJava      = regexp.MustCompile(`<(?:java\.version|maven\.compiler\.release|maven\.compiler\.source|maven\.compiler\.target)>\s*([0-9.]{1,8})\s*<`)
	reGradleJava   = regexp.MustCompile(`JavaLanguageVersion\.of\(\s*(\d{1,3})\s*\)|(?:source|target)Compatibility\s*=\s*(?:JavaVersion\.VERSION_|["'])([0-9_.]{1,8})`)
	reGradleDist   = regexp.MustCompile(`distributionUrl=.*gradle-([0-9.]{1,12})-(?:bin|all)\.zip`)
	rePropsPort    = regexp.MustCompile(`(?m)^\s*server\.port\s*[=:]\s*(\S+)`)
	reSystemJava   = regexp.MustCompile(`(?m)^\s*java\.runtime\.version\s*=\s*(\S+)`)
	springMarkers  = []string{"org.springframework.boot", "spring-boot-starter", "spring-boot-gradle-plugin"}
	quarkusMarkers = []string{"io.quarkus"}
	micronautMarks = []string{"io.micronaut"}
)

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

var pomFiles = []string{"pom.xml", "pom.atom", "pom.clj", "pom.groovy", "pom.rb", "pom.scala", "pom.yaml", "pom.yml"}

func (d *detection) detectJava() *candidate {
	t := d.t
	pomName := t.firstFile(pomFiles...)
	gradleName := t.firstFile("build.gradle.kts", "build.gradle")
	hasGradlew := t.isFile("gradlew")
	if pomName == "" && gradleName == "" && !hasGradlew {
		return nil
	}
	// Nixpacks detects Maven by pom files and Gradle only by the wrapper.
	c := &candidate{language: "java", framework: "java", tier: tierLanguage, nixpacks: pomName != "" || hasGradlew}
	var build string
	if gradleName != "" || hasGradlew {
		c.pm = "gradle"
		if t.isFile("gradle.lockfile") {
			c.lockfile = "gradle.lockfile"
		}
		d.addf("%s -> gradle", nonEmpty(gradleName, "gradlew"))
		if gradleName != "" {
			data, ok := t.manifest(gradleName)
			if !ok {
				c.framework, c.tier = "", tierMalformed
				return c
			}
			build = string(data)
		}
		if props, ok := t.manifest("gradle/wrapper/gradle-wrapper.properties"); ok {
			if m := reGradleDist.FindStringSubmatch(string(props)); m != nil {
				c.setVersion("gradle", m[1], "gradle-wrapper.properties", d)
			}
		}
		if m := reGradleJava.FindStringSubmatch(build); m != nil {
			c.setVersion("java", nonEmpty(m[1], strings.ReplaceAll(m[2], "_", ".")), gradleName, d)
		}
	} else {
		c.pm = "maven"
		d.addf("%s -> maven", pomName)
		data, ok := t.manifest(pomName)
		if !ok {
			c.framework, c.tier = "", tierMalformed
			return c
		}
		build = string(data)
		if m := rePomJava.FindStringSubmatch(build); m != nil {
			c.setVersion("java", m[1], pomName, d)
		}
	}
	if data, ok := t.manifest("system.properties"); ok {
		if m := reSystemJava.FindStringSubmatch(string(data)); m != nil {
			c.setVersion("java", m[1], "system.properties java.runtime.version", d)
		}
	}
	if data, ok := t.manifest(".java-version"); ok {
		c.setVersion("java", firstLine(data), ".java-version", d)
	}
	c.setVersion("java", d.toolVersions()["java"], ".tool-versions", d)

	switch {
	case containsAny(build, springMarkers...):
		c.framework, c.tier = "spring", tierFramework
		d.addf("build file uses Spring Boot -> spring")
		// Spring Boot: server.port, else 8080; it does not read PORT itself.
		c.own = frameworkDefault(8080, false, "Spring Boot")
		if l, ok := d.springConfigPort(); ok {
			c.own = l
		}
		// Nixpacks starts Spring Boot with -Dserver.port=$PORT, which beats
		// application.properties.
		c.serve = frameworkDefault(8080, true, "Nixpacks' java -Dserver.port=$PORT")
	case containsAny(build, quarkusMarkers...):
		c.framework, c.tier = "quarkus", tierFramework
		d.addf("build file uses Quarkus -> quarkus")
		c.own = frameworkDefault(8080, false, "Quarkus") // quarkus.http.port, else 8080
		c.serve = c.own
	case containsAny(build, micronautMarks...):
		c.framework, c.tier = "micronaut", tierFramework
		d.addf("build file uses Micronaut -> micronaut")
		c.own = frameworkDefault(8080, false, "Micronaut") // micronaut.server.port, else 8080
		c.serve = c.own
	}
	return c
}

// springConfigPort reads server.port from application.properties or .yml.
func (d *detection) springConfigPort() (listen, bool) {
	for _, name := range []string{"src/main/resources/application.properties", "src/main/resources/application.yml", "src/main/resources/application.yaml"} {
		data, ok := d.t.manifest(name)
		if !ok {
			continue
		}
		var val string
		if strings.HasSuffix(name, ".properties") {
			if m := rePropsPort.FindStringSubmatch(string(data)); m != nil {
				val = m[1]
			}
		} else {
			val = yamlNested(string(data), "server", "port")
		}
		if val == "" {
			continue
		}
		src := name + " server.port"
		if p, ok := parsePort(strings.Trim(val, `"'`)); ok {
			d.addf("%s = %d (for Dockerfile builds: Nixpacks starts Spring Boot with -Dserver.port=$PORT, which overrides it)", src, p)
			return fixed(p, src), true
		}
		// ${PORT:8081}: Spring placeholders read PORT, with a default.
		if strings.HasPrefix(val, "${PORT") {
			_, def, _ := strings.Cut(strings.TrimSuffix(val, "}"), ":")
			p, _ := parsePort(def)
			d.addf("%s = %s: reads PORT", src, val)
			l := listen{readsPORT: true, port: p, reader: src}
			if p > 0 {
				l.source = src
			}
			return l, true
		}
	}
	return listen{}, false
}

// yamlNested finds parent: / child: value in simple block YAML, enough for
// Spring's server.port without a YAML library.
func yamlNested(doc, parent, child string) string {
	in := false
	for _, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indented := line[0] == ' ' || line[0] == '\t'
		if !indented {
			in = strings.HasPrefix(trimmed, parent+":")
			if v, ok := strings.CutPrefix(trimmed, parent+"."+child+":"); ok {
				return strings.TrimSpace(v)
			}
			continue
		}
		if in {
			if v, ok := strings.CutPrefix(trimmed, child+":"); ok {
				v, _, _ = strings.Cut(v, " #")
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}

func (d *detection) detectScala() *candidate {
	if !d.t.isFile("build.sbt") {
		return nil
	}
	d.addf("build.sbt -> scala")
	return &candidate{language: "scala", framework: "scala", tier: tierLanguage, pm: "sbt", nixpacks: true}
}

func (d *detection) detectClojure() *candidate {
	switch {
	case d.t.isFile("project.clj"):
		d.addf("project.clj -> clojure")
		return &candidate{language: "clojure", framework: "clojure", tier: tierLanguage, pm: "leiningen", nixpacks: true}
	case d.t.isFile("deps.edn"):
		d.addf("deps.edn -> clojure")
		return &candidate{language: "clojure", framework: "clojure", tier: tierLanguage, pm: "clojure"}
	}
	return nil
}
