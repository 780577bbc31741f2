package baseimage

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
)

// EnvMirror overrides the Debian archive URL read from the host's apt
// sources, e.g. http://deb.debian.org/debian.
const EnvMirror = "AF_TEST_DEBIAN_MIRROR"

// Sources are the Debian archives the stand-ins are built from: the ones the
// host's apt already uses, since those are the ones reachable from here.
type Sources struct {
	// Mirror is the main archive (suites bookworm and bookworm-updates).
	Mirror string
	// Security is the security archive (bookworm-security); empty when the
	// host names none.
	Security string
}

// suite is the Debian release the official images named *-bookworm* use.
const suite = "bookworm"

// HostSources reads the archive URLs from /etc/apt (deb822 .sources files
// and one-line .list files), falling back to deb.debian.org.
func HostSources() Sources {
	s := readSources("/etc/apt")
	if m := os.Getenv(EnvMirror); m != "" {
		s.Mirror = m
	}
	if s.Mirror == "" {
		s.Mirror = "http://deb.debian.org/debian"
	}
	return s
}

// aptLines lists the sources as (uri, suites) pairs.
func readSources(etc string) Sources {
	var entries [][2]string // uri, suite
	files, _ := filepath.Glob(filepath.Join(etc, "sources.list.d", "*.sources"))
	for _, f := range files {
		for _, stanza := range deb822(f) {
			if stanza["enabled"] == "no" || !strings.Contains(" "+stanza["types"]+" ", " deb ") {
				continue
			}
			for _, u := range strings.Fields(stanza["uris"]) {
				for _, su := range strings.Fields(stanza["suites"]) {
					entries = append(entries, [2]string{u, su})
				}
			}
		}
	}
	lists, _ := filepath.Glob(filepath.Join(etc, "sources.list.d", "*.list"))
	lists = append([]string{filepath.Join(etc, "sources.list")}, lists...)
	for _, f := range lists {
		for _, l := range lines(f) {
			fields := strings.Fields(l)
			if len(fields) < 3 || fields[0] != "deb" {
				continue
			}
			fields = fields[1:]
			if strings.HasPrefix(fields[0], "[") { // [signed-by=...] options
				for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
					fields = fields[1:]
				}
				if len(fields) > 0 {
					fields = fields[1:]
				}
			}
			if len(fields) >= 2 {
				entries = append(entries, [2]string{fields[0], fields[1]})
			}
		}
	}
	var s Sources
	for _, e := range entries {
		uri := strings.TrimSuffix(e[0], "/")
		switch {
		case strings.HasSuffix(e[1], "-security"):
			if s.Security == "" && strings.Contains(uri, "debian-security") {
				s.Security = uri
			}
		case strings.HasSuffix(uri, "/debian"):
			// A Debian archive for any release serves bookworm too.
			if s.Mirror == "" || e[1] == suite {
				s.Mirror = uri
			}
		}
	}
	return s
}

// sourcesList is /etc/apt/sources.list inside the stand-ins.
func (s Sources) sourcesList() string {
	out := "deb " + s.Mirror + " " + suite + " main\n" +
		"deb " + s.Mirror + " " + suite + "-updates main\n"
	if s.Security != "" {
		out += "deb " + s.Security + " " + suite + "-security main\n"
	}
	return out
}

// deb822 parses the stanzas of a .sources file, keys lower-cased.
func deb822(path string) []map[string]string {
	var out []map[string]string
	cur := map[string]string{}
	last := ""
	for _, l := range append(lines(path), "") {
		switch {
		case strings.TrimSpace(l) == "":
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
			}
		case strings.HasPrefix(l, "#"):
		case l[0] == ' ' || l[0] == '\t':
			if last != "" {
				cur[last] += " " + strings.TrimSpace(l)
			}
		default:
			k, v, ok := strings.Cut(l, ":")
			if ok {
				last = strings.ToLower(strings.TrimSpace(k))
				cur[last] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

func lines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
