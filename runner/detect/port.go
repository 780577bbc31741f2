package detect

import "strconv"

// DefaultPort is the PORT the runner sets in images it builds with Nixpacks.
// Apps whose start command honours PORT (most PaaS-ready frameworks) listen
// there; the port reported for them is this one, not their own default.
// Images built from the repo's Dockerfile get no PORT from the runner, so for
// them the Dockerfile (EXPOSE, ENV PORT) or the framework's own default decides.
const DefaultPort = 8080

// listen is how a start command picks the port it listens on.
type listen struct {
	port int // the port it uses when PORT is unset; 0 when unknown
	// readsPORT: it listens on $PORT when that is set.
	readsPORT bool
	// explicit: the port is stated outright (a --port flag, a config value),
	// so it wins over PORT.
	explicit bool
	// source says where port comes from, as printed in PortSource.
	source string
	// reader names what reads PORT, for "PORT set by the runner (next start reads PORT)".
	reader string
	// assumed marks a guess (a framework with no default whose code we could not read).
	assumed bool
}

func (l listen) known() bool { return l.port > 0 || l.readsPORT }

// fixed is a port stated outright.
func fixed(port int, source string) listen {
	return listen{port: port, explicit: true, source: source}
}

// frameworkDefault is the port a server picks by itself; readsPORT says whether
// PORT overrides it.
func frameworkDefault(port int, readsPORT bool, what string) listen {
	l := listen{port: port, readsPORT: readsPORT, reader: what}
	if port > 0 {
		l.source = "framework default (" + what + ")"
	}
	return l
}

// resolve turns l into the port the app will answer on, given the PORT its
// container will have (0 when nobody sets one).
func (l listen) resolve(envPORT int, envSource string) (int, string) {
	switch {
	case l.explicit && l.port > 0:
		return l.port, l.source
	case l.readsPORT && envPORT > 0:
		what := l.reader
		if what == "" {
			what = l.source
		}
		src := envSource
		if what != "" {
			src += " (" + what + " reads PORT)"
		}
		if l.assumed {
			src += ", assumed"
		}
		return envPORT, src
	case l.port > 0:
		return l.port, l.source
	}
	return 0, ""
}

// parsePort accepts 1..65535 written as decimal digits.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, false
	}
	return n, true
}
