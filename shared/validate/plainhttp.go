package validate

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

// PlainHTTPHostsVar is the variable, in dispatch's configuration and in the
// runner's contract, that lists the hosts callbacks may reach over plain
// http.
const PlainHTTPHostsVar = "CALLBACK_PLAIN_HTTP_HOSTS"

// PlainHTTPHosts are the hosts an operator allows plain http to, besides
// loopback. Each entry is an exact host name or IP address
// ("service-cloud-api", "api.internal", "10.0.0.7"), or a suffix starting
// with '.' (".svc", ".svc.cluster.local") that matches every name ending in
// it. Names compare case-insensitively, without a trailing dot.
type PlainHTTPHosts []string

var hostLabelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParsePlainHTTPHosts reads a comma- or space-separated list. An empty list
// allows nothing beyond loopback.
func ParsePlainHTTPHosts(s string) (PlainHTTPHosts, error) {
	var out PlainHTTPHosts
	for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		e = strings.TrimSuffix(strings.ToLower(e), ".")
		if err := checkHostEntry(e); err != nil {
			return nil, fmt.Errorf("entry %q %v", e, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func checkHostEntry(e string) error {
	if net.ParseIP(e) != nil {
		return nil
	}
	name := strings.TrimPrefix(e, ".")
	if name == "" {
		return fmt.Errorf("is empty (a suffix needs a name after the '.')")
	}
	for _, label := range strings.Split(name, ".") {
		if !hostLabelRe.MatchString(label) {
			return fmt.Errorf("is not a host name, an IP address or a '.suffix' (wildcards, ports and schemes are not allowed)")
		}
	}
	return nil
}

// Allows reports whether plain http to host (as url.URL.Hostname returns
// it) is allowed by the list.
func (p PlainHTTPHosts) Allows(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return false
	}
	for _, e := range p {
		if strings.HasPrefix(e, ".") {
			if strings.HasSuffix(host, e) && len(host) > len(e) {
				return true
			}
			continue
		}
		if host == e {
			return true
		}
	}
	return false
}

// String renders the list as ParsePlainHTTPHosts reads it.
func (p PlainHTTPHosts) String() string { return strings.Join(p, ",") }
