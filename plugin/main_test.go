package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestCommands(t *testing.T) {
	t.Setenv("HOSTPASS_AUDIT_LOG", "/srv/audit/hp.jsonl")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"version", []string{"version"}, 0, "hostpass dev (commit unknown)\n", ""},
		{"--version", []string{"--version"}, 0, "hostpass dev (commit unknown)\n", ""},
		{"no command", nil, 2, "", "Available Commands:"},
		{"unknown command", []string{"frob"}, 2, "", "hostpass: unknown command \"frob\" for \"hostpass\"\nSee 'hostpass --help'."},
		{"help lists commands", []string{"--help"}, 0, "Available Commands:\n  audit", ""},
		{"help command", []string{"help", "serve"}, 0, "HOSTPASS_STATE_DIR", ""},
		{"serve help shows env default", []string{"serve", "--help"}, 0, `(default "/srv/audit/hp.jsonl")`, ""},
		{"serve help shows env name", []string{"serve", "--help"}, 0, `(env HOSTPASS_AUDIT_LOG)`, ""},
		{"serve help shows booleans as booleans", []string{"serve", "--help"}, 0, "      --watch                        follow Docker's events", ""},
		{"bad log level", []string{"serve", "--log-level", "loud"}, 2, "", `hostpass serve: unknown log level "loud"; accepted: panic, fatal, error, warning, info, debug, trace`},
		{"unknown flag", []string{"serve", "--mtu", "9000"}, 2, "", "hostpass serve: unknown flag: --mtu\nSee 'hostpass serve --help'."},
		{"stray argument", []string{"serve", "now"}, 2, "", `hostpass serve: unexpected argument "now"; it takes flags only`},
		{"bad size", []string{"serve", "--audit-max-size", "big"}, 2, "", `--audit-max-size: "big" is not a size: want bytes, or a number with KiB, MiB or GiB (64MiB)`},
		{"bad epoch", []string{"serve", "--seal-epoch-records", "0"}, 2, "", `--seal-epoch-records: "0" is not a whole number of records, 1 or more`},
		{"bad interval", []string{"serve", "--seal-epoch-interval", "soon"}, 2, "", `--seal-epoch-interval: "soon" is not a positive duration`},
		{"bad watch", []string{"serve", "--watch=maybe"}, 2, "", `invalid argument "maybe" for "--watch" flag: "maybe" is not true or false`},
		{"watch takes no separate value", []string{"serve", "--watch", "maybe"}, 2, "", `unexpected argument "maybe"; it takes flags only`},
		{"bad policy", []string{"serve", "--policy-allow", "team=web"}, 2, "", `--policy-allow: policy rule "team=web": want all, or rules label:KEY=VALUE, label:KEY, image:PATTERN, service:PATTERN or stack:PATTERN separated by commas`},
		{"bad policy-stop", []string{"serve", "--policy-stop=yes please"}, 2, "", `"yes please" is not true or false`},
		{"docker socket over tcp", []string{"serve", "--docker-socket", "tcp://10.0.0.1:2375"}, 2, "",
			`hostpass serve: --docker-socket: "tcp://10.0.0.1:2375" is not a unix socket; accepted: an absolute path (/var/run/docker.sock) or a unix:// URL with one (unix:///var/run/docker.sock)`},
		{"audit alone", []string{"audit"}, 2, "", "Available Commands:"},
		{"audit unknown command", []string{"audit", "frob"}, 2, "", `unknown command "frob" for "hostpass audit"`},
		{"verify bad anchor", []string{"audit", "verify", "--anchor", "7:beef"}, 2, "", `invalid argument "7:beef" for "--anchor" flag: want SEQ:HASH`},
		// A missing log is a failure (exit 1), however it was named, not
		// misuse; the message names the path and, when no path was given,
		// where it came from.
		{"verify missing log", []string{"audit", "verify", "/nonexistent/audit.jsonl"}, 1, "",
			"hostpass audit verify: no audit log at /nonexistent/audit.jsonl: open /nonexistent/: no such file or directory\n"},
		{"verify missing logs", []string{"audit", "verify", "/nonexistent/a.jsonl", "/nonexistent/b.jsonl"}, 1, "",
			"hostpass audit verify: no audit log at /nonexistent/a.jsonl: stat /nonexistent/a.jsonl: no such file or directory\n"},
		{"verify no log at HOSTPASS_AUDIT_LOG", []string{"audit", "verify"}, 1, "",
			"hostpass audit verify: no audit log at /srv/audit/hp.jsonl (from HOSTPASS_AUDIT_LOG; or name the log's FILE or DIR): open /srv/audit/: no such file or directory\n"},
		{"show no log at HOSTPASS_AUDIT_LOG", []string{"audit", "show"}, 1, "",
			"hostpass audit show: no audit log at /srv/audit/hp.jsonl (from HOSTPASS_AUDIT_LOG; or name the log's FILE or DIR): open /srv/audit/: no such file or directory\n"},
		{"show missing log", []string{"audit", "show", "/nonexistent/audit.jsonl"}, 1, "",
			"hostpass audit show: no audit log at /nonexistent/audit.jsonl: open /nonexistent/: no such file or directory\n"},
		{"show bad since", []string{"audit", "show", "--since", "yesterday"}, 2, "", `hostpass audit show: --since: "yesterday" is neither an RFC 3339 time`},
		{"show bad bool", []string{"audit", "show", "--json=sometimes"}, 2, "", `invalid argument "sometimes" for "--json" flag`},
		{"keygen without file", []string{"audit", "keygen"}, 2, "", "accepts 1 arg(s), received 0"},
		{"keygen two files", []string{"audit", "keygen", "a", "b"}, 2, "", "accepts 1 arg(s), received 2"},
		{"keygen epoch without from", []string{"audit", "keygen", "--epoch", "3", "k"}, 2, "", "--epoch needs --from, the initial key file to step from"},
		{"keygen from a missing key", []string{"audit", "keygen", "--from", "/nonexistent/initial.key", "--epoch", "3", "k"}, 1, "", "open /nonexistent/initial.key: no such file or directory"},
		{"keygen sign with from", []string{"audit", "keygen", "--sign", "--from", "a", "k"}, 2, "", "--sign makes a new signing key: it takes neither --from nor --epoch, which step a sealing key"},
		{"keygen host without sign", []string{"audit", "keygen", "--host", "web-1", "k"}, 2, "", "--host names a signing key's host: it needs --sign"},
		{"keygen sign bad host", []string{"audit", "keygen", "--sign", "--host", "web 1", "/nonexistent/k"}, 2, "", "web 1"},
		{"completion bash", []string{"completion", "bash"}, 0, "# bash completion V2 for hostpass", ""},
		{"completion zsh", []string{"completion", "zsh"}, 0, "#compdef hostpass", ""},
		{"completion unknown shell", []string{"completion", "tcsh"}, 2, "", `unknown command "tcsh" for "hostpass completion"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errOut.String(), tc.stderr) {
				t.Errorf("hostpass %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
					tc.args, code, out.String(), errOut.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

// Every --help prints its help once, on stdout, and exits 0.
func TestHelpPrintsOnceAndExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"},
		{"serve", "--help"}, {"serve", "-h"},
		{"audit", "--help"}, {"audit", "verify", "--help"}, {"audit", "show", "--help"}, {"audit", "keygen", "--help"},
		{"bench", "--help"}, {"version", "--help"}, {"completion", "--help"}, {"completion", "bash", "--help"},
	} {
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		if code != 0 || strings.Count(out.String(), "Usage:") != 1 || errOut.Len() != 0 {
			t.Errorf("hostpass %q = %d, %d usage(s) on stdout, stderr %q; want 0, one, empty\nstdout:\n%s",
				args, code, strings.Count(out.String(), "Usage:"), errOut.String(), out.String())
		}
	}
	// serve lists each flag once.
	var out bytes.Buffer
	run([]string{"serve", "--help"}, &out, &out)
	for _, s := range settings(&serveOptions{}) {
		if n := strings.Count(out.String(), "--"+s.flag+" "); n != 1 {
			t.Errorf("serve --help lists --%s %d times; want once", s.flag, n)
		}
	}
}

func TestEnvironmentReplacesDefaultsAndFlagsReplaceBoth(t *testing.T) {
	t.Setenv("HOSTPASS_WATCH", "false")
	t.Setenv("HOSTPASS_DOCKER_SOCKET", "unix:///srv/docker.sock")
	t.Setenv("HOSTPASS_SEAL_EPOCH_RECORDS", "7")
	cmd := newServeCommand()
	if err := cmd.ParseFlags([]string{"--seal-epoch-records", "9"}); err != nil {
		t.Fatal(err)
	}
	var o serveOptions
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		switch f.Name {
		case "watch":
			o.watch = f.Value.String()
		case "docker-socket":
			o.dockerSocket = f.Value.String()
		case "seal-epoch-records":
			o.epochRecords = f.Value.String()
		}
	})
	if o.watch != "false" || o.dockerSocket != "unix:///srv/docker.sock" || o.epochRecords != "9" {
		t.Errorf("watch %q, docker-socket %q, seal-epoch-records %q; want the environment's false and unix:///srv/docker.sock, and the flag's 9",
			o.watch, o.dockerSocket, o.epochRecords)
	}

	t.Setenv("HOSTPASS_WATCH", "maybe")
	var out, errOut bytes.Buffer
	if code := run([]string{"serve"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `hostpass serve: --watch: "maybe" is not true or false`) {
		t.Errorf("HOSTPASS_WATCH=maybe: exit %d, stderr %q; want 2 naming --watch", code, errOut.String())
	}
}

func TestParseDockerSocket(t *testing.T) {
	const accepted = "accepted: an absolute path (/var/run/docker.sock) or a unix:// URL with one (unix:///var/run/docker.sock)"
	const notURL = " is not a unix:// URL with an absolute path (three slashes); " + accepted
	for _, tc := range []struct{ in, path, err string }{
		{"/var/run/docker.sock", "/var/run/docker.sock", ""},
		{"unix:///var/run/docker.sock", "/var/run/docker.sock", ""},
		{"unix:///run/user/1000/docker.sock", "/run/user/1000/docker.sock", ""},
		{"/run//docker.sock", "/run/docker.sock", ""},
		{"/srv/odd://name.sock", "/srv/odd:/name.sock", ""},
		{"", "", "empty; " + accepted},
		{"tcp://10.0.0.1:2375", "", `"tcp://10.0.0.1:2375" is not a unix socket; ` + accepted},
		{"http://localhost/docker.sock", "", `"http://localhost/docker.sock" is not a unix socket; ` + accepted},
		{"ssh://me@host", "", `"ssh://me@host" is not a unix socket; ` + accepted},
		{"npipe:////./pipe/docker_engine", "", `"npipe:////./pipe/docker_engine" is not a unix socket; ` + accepted},
		{"unix://var/run/docker.sock", "", `"unix://var/run/docker.sock"` + notURL},
		{"unix://", "", `"unix://"` + notURL},
		// Before, these were taken as paths: the daemon dialled
		// unix://unix:/var/run/docker.sock, or /, and retried for ever.
		{"unix:/var/run/docker.sock", "", `"unix:/var/run/docker.sock"` + notURL},
		{"unix:var/run/docker.sock", "", `"unix:var/run/docker.sock"` + notURL},
		{"unix://me@/var/run/docker.sock", "", `"unix://me@/var/run/docker.sock"` + notURL},
		{"unix:///", "", `"unix:///" names the root directory, not a socket; ` + accepted},
		{"/", "", `"/" names the root directory, not a socket; ` + accepted},
		{"docker.sock", "", `"docker.sock" is a relative path, which would depend on the daemon's working directory; ` + accepted},
	} {
		path, err := parseDockerSocket(tc.in)
		if path != tc.path || (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("parseDockerSocket(%q) = %q, %v; want %q, %q", tc.in, path, err, tc.path, tc.err)
		}
	}
}

// The daemon gets the path, whichever form was given: before, a unix:// URL
// became unix://unix:///... and the watcher retried it for ever.
func TestCheckTakesTheDockerHostForm(t *testing.T) {
	var o serveOptions
	for _, s := range settings(&o) {
		*s.dst = s.def
	}
	o.dockerSocket = "unix:///run/docker.sock"
	cfg, _, err := o.check()
	if err != nil || cfg.DockerSocket != "/run/docker.sock" {
		t.Errorf("check with --docker-socket unix:///run/docker.sock: DockerSocket %q, %v; want /run/docker.sock", cfg.DockerSocket, err)
	}
}

// A bad setting that only the daemon would have met (a syslog address, the
// sealing key file, a docker socket given as unix: without //) is refused
// before anything starts: exit 2, naming the flag and what it accepts, and
// nothing created. Before, the first two exited 1 with a log line once the
// daemon ran, and the third was dialled as a relative path for ever.
func TestSettingsRefusedBeforeAnythingStarts(t *testing.T) {
	const syslogs = "want unixgram:///dev/log, unix:///PATH, udp://HOST:PORT or tcp://HOST:PORT; empty: off"
	const sockets = "accepted: an absolute path (/var/run/docker.sock) or a unix:// URL with one (unix:///var/run/docker.sock)"
	damaged := filepath.Join(t.TempDir(), "seal.key")
	if err := os.WriteFile(damaged, []byte(`{"epoch":3,"key":"00`), 0o600); err != nil {
		t.Fatal(err)
	}
	signKey := filepath.Join(t.TempDir(), "sign.key")
	if code := run([]string{"audit", "keygen", "--sign", "--host", "web-1", signKey}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("keygen --sign: exit %d", code)
	}
	damagedSign := filepath.Join(t.TempDir(), "sign.key")
	b, _ := os.ReadFile(signKey)
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(damagedSign, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		env, args []string
		stderr    string
	}{
		{"syslog scheme", nil, []string{"--syslog", "http://x"},
			`hostpass serve: --syslog: syslog address "http://x": ` + syslogs},
		{"syslog from the environment", []string{"HOSTPASS_SYSLOG", "udp://collector"}, nil,
			`hostpass serve: --syslog: syslog address "udp://collector": ` + syslogs},
		{"seal key missing", nil, []string{"--seal-key", "/nonexistent/seal.key"},
			"hostpass serve: --seal-key: open /nonexistent/seal.key: no such file or directory; want the daemon's copy of a key made by 'hostpass audit keygen FILE', or empty for a plain SHA-256 chain"},
		{"seal key damaged", nil, []string{"--seal-key", damaged},
			"hostpass serve: --seal-key: key file " + damaged + " is damaged or not a hostpass key file"},
		{"sign and seal keys", nil, []string{"--seal-key", damaged, "--sign-key", signKey},
			"hostpass serve: --sign-key and --seal-key: a log is signed or sealed, not both (one epoch clock, one kind of key); give --sign-key alone for a new log, or --seal-key alone to go on with a sealed one"},
		{"sign key missing", []string{"HOSTPASS_SIGN_KEY", "/nonexistent/sign.key"}, nil,
			"hostpass serve: --sign-key: open /nonexistent/sign.key: no such file or directory; want the key file made by 'hostpass audit keygen --sign FILE', or empty for no signing"},
		{"sign key damaged", nil, []string{"--sign-key", damagedSign},
			"hostpass serve: --sign-key: signing key file " + damagedSign + " is damaged or not a hostpass signing key file"},
		{"checkpoint records", []string{"HOSTPASS_CHECKPOINT_RECORDS", "0"}, nil,
			`hostpass serve: --checkpoint-records: "0" is not a whole number of records, 1 or more`},
		{"heartbeat", nil, []string{"--heartbeat", "5"},
			`hostpass serve: --heartbeat: "5" is not a positive duration such as 30s or 1m`},
		{"docker socket unix: without //", []string{"HOSTPASS_DOCKER_SOCKET", "unix:/var/run/docker.sock"}, nil,
			`hostpass serve: --docker-socket: "unix:/var/run/docker.sock" is not a unix:// URL with an absolute path (three slashes); ` + sockets},
		{"docker socket root", nil, []string{"--docker-socket", "unix:///"},
			`hostpass serve: --docker-socket: "unix:///" names the root directory, not a socket; ` + sockets},
		{"metrics on every address", nil, []string{"--metrics", "tcp://0.0.0.0:9632"},
			`hostpass serve: --metrics: "tcp://0.0.0.0:9632" is not a loopback address: the metrics endpoint has no authentication or TLS, so it is served on this host only; scrape it from elsewhere through a proxy or tunnel; accepted: unix:///PATH`},
		{"metrics over http", []string{"HOSTPASS_METRICS", "http://127.0.0.1:9632"}, nil,
			`hostpass serve: --metrics: "http://127.0.0.1:9632": scheme "http" is not served; accepted: unix:///PATH`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != nil {
				t.Setenv(tc.env[0], tc.env[1])
			}
			dir := t.TempDir()
			args := append([]string{"serve", "--socket", filepath.Join(dir, "hp.sock"), "--audit-log", filepath.Join(dir, "log", "audit.jsonl"),
				"--state-dir", filepath.Join(dir, "state")}, tc.args...)
			var out, errOut bytes.Buffer
			code := run(args, &out, &errOut)
			if code != 2 || !strings.HasPrefix(errOut.String(), tc.stderr) {
				t.Errorf("hostpass %q = %d\nstderr: %s\nwant 2, stderr starting %q", args, code, errOut.String(), tc.stderr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("hostpass %q created %v; want nothing before the settings are checked", args, entries)
			}
		})
	}
}

// Without HOSTPASS_AUDIT_LOG, verify and show name the default path and the
// variable that would replace it.
func TestMissingDefaultLogNamesTheVariable(t *testing.T) {
	const path = "/var/log/hostpass/audit.jsonl"
	if _, err := os.Stat(path); err == nil {
		t.Skipf("%s exists on this machine", path)
	}
	t.Setenv("HOSTPASS_AUDIT_LOG", "")
	for _, cmd := range []string{"verify", "show"} {
		var out, errOut bytes.Buffer
		code := run([]string{"audit", cmd}, &out, &errOut)
		want := "hostpass audit " + cmd + ": no audit log at " + path + " (the default: set HOSTPASS_AUDIT_LOG, or name the log's FILE or DIR): "
		if code != 1 || !strings.HasPrefix(errOut.String(), want) {
			t.Errorf("hostpass audit %s = %d, stderr %q; want 1, stderr starting %q", cmd, code, errOut.String(), want)
		}
	}
}

// keygen --sign writes the daemon's key file (0600) and FILE.pub, the
// verifier key that the output shows, named after --host; it never
// overwrites.
func TestKeygenSign(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sign.key")
	var out, errOut bytes.Buffer
	if code := run([]string{"audit", "keygen", "--sign", "--host", "web-1", file}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	pub, err := os.ReadFile(file + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	vkey := strings.TrimSpace(string(pub))
	if !strings.HasPrefix(vkey, "hostpass/web-1/") || !strings.Contains(out.String(), "\n  "+vkey+"\n") {
		t.Errorf("FILE.pub %q; output:\n%s\nwant a web-1 key, shown in the output", vkey, out.String())
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v; want mode 0600", st, err)
	}
	if code := run([]string{"audit", "keygen", "--sign", file}, &out, &errOut); code == 0 {
		t.Errorf("a second keygen --sign over %s succeeded", file)
	}
}
