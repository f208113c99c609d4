package metrics

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hostpass/hostpass/unixsock"
)

const accepted = "accepted: unix:///PATH (an absolute path, such as unix:///run/hostpass/metrics.sock) or tcp://127.0.0.1:PORT (a loopback address: 127.0.0.0/8 or [::1]); empty: off"

// maxQuoted bounds how much of a refused value an error repeats: enough to
// recognise it, not a megabyte of it in the log.
const maxQuoted = 120

// quote is s quoted for an error, cut to maxQuoted bytes with its length
// said when longer.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(strings.ToValidUTF8(s[:maxQuoted], "")), len(s))
}

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
	q := quote(s)
	u, perr := url.Parse(s)
	if perr != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", "", fmt.Errorf("%s is not a unix:// or tcp:// URL; %s", q, accepted)
	}
	switch strings.ToLower(u.Scheme) {
	case "unix":
		if u.Host != "" || !filepath.IsAbs(u.Path) || !strings.HasPrefix(s[len("unix:"):], "///") {
			return "", "", fmt.Errorf("%s does not name an absolute path (unix:// and then the path, three slashes in all); %s", q, accepted)
		}
		p := filepath.Clean(u.Path)
		if p == "/" {
			return "", "", fmt.Errorf("%s names the root directory, not a socket; %s", q, accepted)
		}
		if len(p) > unixsock.MaxPath {
			return "", "", fmt.Errorf("%s: the path is %d bytes long; a unix socket's path holds at most %d; %s", q, len(p), unixsock.MaxPath, accepted)
		}
		return "unix", p, nil
	case "tcp":
		if u.Path != "" {
			return "", "", fmt.Errorf("%s has a path; a tcp:// address is an IP and a port only (metrics are served on /metrics); %s", q, accepted)
		}
		host, port, serr := net.SplitHostPort(u.Host)
		if serr != nil {
			return "", "", fmt.Errorf("%s has no port; %s", q, accepted)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("%s: port %s is not a number from 1 to 65535; %s", q, quote(port), accepted)
		}
		ip := net.ParseIP(host)
		if ip == nil {
			return "", "", fmt.Errorf("%s: %s is not an IP address (a host name's address depends on the resolver); %s", q, quote(host), accepted)
		}
		if !ip.IsLoopback() {
			return "", "", fmt.Errorf("%s is not a loopback address: the metrics endpoint has no authentication or TLS, so it is served on this host only; scrape it from elsewhere through a proxy or tunnel; %s", q, accepted)
		}
		return "tcp", u.Host, nil
	}
	return "", "", fmt.Errorf("%s: scheme %s is not served; %s", q, quote(u.Scheme), accepted)
}
