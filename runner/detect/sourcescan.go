package detect

import (
	"regexp"
	"strings"
)

// Source scanning reads one entry file and looks for how it listens. Go's
// regexp runs in linear time, so no input can make these slow.
var (
	// rePORTEnv finds code that reads a PORT variable: process.env.PORT,
	// os.Getenv("PORT"), ENV["PORT"], Platform.environment['PORT'], ${PORT}...
	rePORTEnv = regexp.MustCompile(`["'` + "`" + `]PORT["'` + "`" + `]|\.PORT\b|\$\{?PORT\b`)

	// rePORTDefault finds the fallback beside it: PORT || 3000, ?? "3000",
	// .get("PORT", 5000), fetch("PORT") { 3000 }, getenv("PORT", default="8000").
	rePORTDefault = regexp.MustCompile(`(?:["'` + "`" + `]PORT["'` + "`" + `]|\.PORT\b)[\])\s]*(?:\|\||\?\?|,|\bor\b|\?:|\{)\s*(?:default\s*=\s*)?(?:int\(|Number\(|parseInt\()?\s*["'` + "`" + `]?(\d{2,5})\b`)

	// reStrongListen are forms that can only be a listening port.
	reStrongListen = []*regexp.Regexp{
		regexp.MustCompile(`\.listen\(\s*(\d{2,5})\b`),                                                                    // app.listen(3000)
		regexp.MustCompile(`\blisten\(\s*\{[^}]{0,80}?\bport\s*:\s*(\d{2,5})\b`),                                          // fastify.listen({ port: 3000 })
		regexp.MustCompile(`["'` + "`" + `](?:0\.0\.0\.0|127\.0\.0\.1|localhost|\[::\]|::|\*)?:(\d{2,5})["'` + "`" + `]`), // ":8080", "0.0.0.0:3000"
		regexp.MustCompile(`\(\s*["'](?:0\.0\.0\.0|127\.0\.0\.1|localhost|::)["']\s*,\s*(\d{2,5})\s*\)`),                  // bind(("0.0.0.0", 8080))
		regexp.MustCompile(`\[\s*(?:0\s*,\s*0\s*,\s*0\s*,\s*0|127\s*,\s*0\s*,\s*0\s*,\s*1)\s*\]\s*,\s*(\d{2,5})\b`),       // SocketAddr::from(([0, 0, 0, 0], 3000))
		regexp.MustCompile(`\.run\([^)\n]{0,80}?\bport\s*=\s*(\d{2,5})\b`),                                                // app.run(port=5000), uvicorn.run(app, port=8000)
		regexp.MustCompile(`\bset\s+:port\s*,\s*(\d{2,5})\b`),                                                             // Sinatra: set :port, 4567
		regexp.MustCompile(`\bserve\(\s*\{[^}]{0,80}?\bport\s*:\s*(\d{2,5})\b`),                                           // Deno.serve({ port: 8000 }), Bun.serve({ port: 3000 })
	}
	// reWeakListen is any "port = 3000": right more often than not, and only
	// used when nothing stronger is in the file.
	reWeakListen = regexp.MustCompile(`(?i)\bport\b["']?\s*(?::=|[:=])\s*["']?(\d{2,5})\b`)
)

// dbPorts are database and broker ports: a "port: 5432" in a server file is
// its database connection, not where it listens.
var dbPorts = map[int]bool{5432: true, 3306: true, 6379: true, 27017: true, 11211: true, 9200: true, 5672: true, 1433: true, 26257: true, 9042: true}

// scanSource reads how the code in src listens: whether it reads PORT, and
// the port it uses otherwise. name labels the result.
func scanSource(name string, src []byte) (listen, bool) {
	s := string(src)
	lit, litText := firstListen(s)
	if rePORTEnv.MatchString(s) {
		l := listen{readsPORT: true, reader: name}
		if m := rePORTDefault.FindStringSubmatchIndex(s); m != nil {
			if p, ok := parsePort(s[m[2]:m[3]]); ok {
				l.port = p
				l.source = name + ": " + lineAt(s, m[0])
			}
		}
		if l.port == 0 && lit > 0 {
			l.port = lit
			l.source = name + ": " + litText
		}
		return l, true
	}
	if lit > 0 {
		return fixed(lit, name+": "+litText), true
	}
	return listen{}, false
}

func firstListen(s string) (int, string) {
	best, bestAt, bestText := 0, -1, ""
	for _, re := range reStrongListen {
		m := re.FindStringSubmatchIndex(s)
		if m == nil {
			continue
		}
		p, ok := parsePort(s[m[2]:m[3]])
		if !ok {
			continue
		}
		if bestAt < 0 || m[0] < bestAt {
			best, bestAt, bestText = p, m[0], lineAt(s, m[0])
		}
	}
	if best > 0 {
		return best, bestText
	}
	for _, m := range reWeakListen.FindAllStringSubmatchIndex(s, 50) {
		if p, ok := parsePort(s[m[2]:m[3]]); ok && !dbPorts[p] {
			return p, lineAt(s, m[0])
		}
	}
	return 0, ""
}

// lineAt is the source line holding offset i, as quoted in reasons.
func lineAt(s string, i int) string {
	start := strings.LastIndexByte(s[:i], '\n') + 1
	end := strings.IndexByte(s[i:], '\n')
	if end < 0 {
		end = len(s)
	} else {
		end += i
	}
	return shorten(s[start:end])
}

func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 48 {
		s = string(r[:45]) + "..."
	}
	return s
}

// scanFile scans one source file of the tree.
func (d *detection) scanFile(name string) (listen, bool) {
	if r, ok := d.scans[name]; ok {
		if r.ok {
			d.addf("%s", describeListen(r.l))
		}
		return r.l, r.ok
	}
	data, ok := d.t.source(name)
	if !ok {
		return listen{}, false
	}
	l, ok := scanSource(name, data)
	if d.scans == nil {
		d.scans = map[string]scanResult{}
	}
	d.scans[name] = scanResult{l, ok}
	if ok {
		d.addf("%s", describeListen(l))
	}
	return l, ok
}

type scanResult struct {
	l  listen
	ok bool
}

// scanFirst scans candidates in order and returns the first that says anything.
func (d *detection) scanFirst(names ...string) (listen, bool) {
	for _, n := range names {
		if l, ok := d.scanFile(n); ok {
			return l, true
		}
	}
	return listen{}, false
}
