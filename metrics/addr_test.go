package metrics

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hostpass/hostpass/unixsock"
)

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, network, address string }{
		{"unix:///run/hostpass/metrics.sock", "unix", "/run/hostpass/metrics.sock"},
		{"unix:///run/hostpass/../hostpass/m.sock", "unix", "/run/hostpass/m.sock"},
		{"tcp://127.0.0.1:9632", "tcp", "127.0.0.1:9632"},
		{"tcp://127.0.0.2:9632", "tcp", "127.0.0.2:9632"},
		{"tcp://[::1]:9632", "tcp", "[::1]:9632"},
		{"TCP://127.0.0.1:1", "tcp", "127.0.0.1:1"},
	} {
		n, a, err := ParseAddr(tc.in)
		if err != nil || n != tc.network || a != tc.address {
			t.Errorf("ParseAddr(%q) = %q, %q, %v; want %q, %q", tc.in, n, a, err, tc.network, tc.address)
		}
	}
}

func TestParseAddrRefuses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"tcp://0.0.0.0:9632", `"tcp://0.0.0.0:9632" is not a loopback address: the metrics endpoint has no authentication or TLS, so it is served on this host only; scrape it from elsewhere through a proxy or tunnel; ` + accepted},
		{"tcp://192.0.2.1:9632", `"tcp://192.0.2.1:9632" is not a loopback address: the metrics endpoint has no authentication or TLS, so it is served on this host only; scrape it from elsewhere through a proxy or tunnel; ` + accepted},
		{"tcp://:9632", `"tcp://:9632": "" is not an IP address (a host name's address depends on the resolver); ` + accepted},
		{"tcp://localhost:9632", `"tcp://localhost:9632": "localhost" is not an IP address (a host name's address depends on the resolver); ` + accepted},
		{"tcp://127.0.0.1", `"tcp://127.0.0.1" has no port; ` + accepted},
		{"tcp://127.0.0.1:0", `"tcp://127.0.0.1:0": port "0" is not a number from 1 to 65535; ` + accepted},
		{"tcp://127.0.0.1:9632/metrics", `"tcp://127.0.0.1:9632/metrics" has a path; a tcp:// address is an IP and a port only (metrics are served on /metrics); ` + accepted},
		{"http://127.0.0.1:9632", `"http://127.0.0.1:9632": scheme "http" is not served; ` + accepted},
		{"127.0.0.1:9632", `"127.0.0.1:9632" is not a unix:// or tcp:// URL; ` + accepted},
		{"/run/hostpass/metrics.sock", `"/run/hostpass/metrics.sock": scheme "" is not served; ` + accepted},
		{"unix://run/m.sock", `"unix://run/m.sock" does not name an absolute path (unix:// and then the path, three slashes in all); ` + accepted},
		{"unix:/run/m.sock", `"unix:/run/m.sock" does not name an absolute path (unix:// and then the path, three slashes in all); ` + accepted},
		{"unix:///", `"unix:///" names the root directory, not a socket; ` + accepted},
	} {
		_, _, err := ParseAddr(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseAddr(%q): %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

// TestParseAddrRefusesHugeValues: a value of any size is refused with an
// error that repeats only its start and says its length, and a unix path
// too long for a socket is refused before anything starts, not at bind
// with "invalid argument".
func TestParseAddrRefusesHugeValues(t *testing.T) {
	long := "/run/" + strings.Repeat("d", unixsock.MaxPath-len("/run/")+1)
	for _, tc := range []struct{ in, want string }{
		{"unix://" + long, `"unix://` + long + `": the path is 108 bytes long; a unix socket's path holds at most 107; ` + accepted},
		{strings.Repeat("x", 1<<20), `"` + strings.Repeat("x", maxQuoted) + `"... (1048576 bytes): scheme "" is not served; ` + accepted},
		{"tcp://127.0.0.1:" + strings.Repeat("9", 1000), `"tcp://127.0.0.1:` + strings.Repeat("9", maxQuoted-len("tcp://127.0.0.1:")) + `"... (1016 bytes): port "` + strings.Repeat("9", maxQuoted) + `"... (1000 bytes) is not a number from 1 to 65535; ` + accepted},
	} {
		_, _, err := ParseAddr(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseAddr(%.40q...): %v\nwant %s", tc.in, err, tc.want)
		}
	}
	// The longest path a socket holds is taken.
	ok := "/run/" + strings.Repeat("d", unixsock.MaxPath-len("/run/"))
	if _, a, err := ParseAddr("unix://" + ok); err != nil || a != ok {
		t.Errorf("ParseAddr of a %d-byte path: %q, %v", len(ok), a, err)
	}
	// A multi-byte character cut at maxQuoted leaves valid text.
	if _, _, err := ParseAddr(strings.Repeat("é", maxQuoted)); err == nil || !utf8.ValidString(err.Error()) {
		t.Errorf("error for a long non-ASCII value: %q", err)
	}
}
