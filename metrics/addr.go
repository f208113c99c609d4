package metrics

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

const accepted = "accepted: unix:///PATH (an absolute path, such as unix:///run/hostpass/metrics.sock) or tcp://127.0.0.1:PORT (a loopback address: 127.0.0.0/8 or [::1]); empty: off"

// ParseAddr reads --metrics: unix:///PATH or tcp://IP:PORT with a loopback
// IP, and returns the network ("unix" or "tcp") and address to listen on.
//
// A non-loopback address is refused, with no override: the endpoint has no
// authentication or TLS, and its series (calls per second, fsync times,
// policy violations, the build) tell anyone on the network what the host
// runs. A Prometheus elsewhere scrapes through whatever already guards the
// host (a reverse proxy with TLS, an SSH tunnel, a node agent), which can
// read the unix socket or the loopback port. A host name, even localhost, is
// refused too: what it resolves to is up to /etc/hosts.
func ParseAddr(s string) (network, address string, err error) {
	u, perr := url.Parse(s)
	if perr != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", "", fmt.Errorf("%q is not a unix:// or tcp:// URL; %s", s, accepted)
	}
	switch strings.ToLower(u.Scheme) {
	case "unix":
		if u.Host != "" || !filepath.IsAbs(u.Path) || !strings.HasPrefix(s[len("unix:"):], "///") {
			return "", "", fmt.Errorf("%q does not name an absolute path (unix:// and then the path, three slashes in all); %s", s, accepted)
		}
		if p := filepath.Clean(u.Path); p != "/" {
			return "unix", p, nil
		}
		return "", "", fmt.Errorf("%q names the root directory, not a socket; %s", s, accepted)
	case "tcp":
		if u.Path != "" {
			return "", "", fmt.Errorf("%q has a path; a tcp:// address is an IP and a port only (metrics are served on /metrics); %s", s, accepted)
		}
		host, port, serr := net.SplitHostPort(u.Host)
		if serr != nil {
			return "", "", fmt.Errorf("%q has no port; %s", s, accepted)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("%q: port %q is not a number from 1 to 65535; %s", s, port, accepted)
		}
		ip := net.ParseIP(host)
		if ip == nil {
			return "", "", fmt.Errorf("%q: %q is not an IP address (a host name's address depends on the resolver); %s", s, host, accepted)
		}
		if !ip.IsLoopback() {
			return "", "", fmt.Errorf("%q is not a loopback address: the metrics endpoint has no authentication or TLS, so it is served on this host only; scrape it from elsewhere through a proxy or tunnel; %s", s, accepted)
		}
		return "tcp", u.Host, nil
	}
	return "", "", fmt.Errorf("%q: scheme %q is not served; %s", s, u.Scheme, accepted)
}
