//go:build linux

// The daemon runs on Linux only (netlink, Docker's plugin sockets); the
// audit commands build everywhere, so that an auditor can verify on a laptop.

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	stdlog "log"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/daemon"
	"github.com/hostpass/hostpass/logout"
	"github.com/hostpass/hostpass/metrics"
	"github.com/hostpass/hostpass/sink"
	"github.com/hostpass/hostpass/watcher"
)

// serveOptions holds the settings as given; check converts them. They stay
// strings until then, so that a bad value from the environment is refused
// with the same message as one from a flag.
type serveOptions struct {
	socket        string
	auditLog      string
	auditMaxSize  string
	sealKey       string
	signKey       string
	cpRecords     string
	cpInterval    string
	heartbeat     string
	epochRecords  string
	epochInterval string
	syslog        string
	dockerSocket  string
	watch         string
	policyAllow   string
	policyStop    string
	stateDir      string
	logLevel      string
	metrics       string
	// signOnly names the settings given (a flag, or its variable set to
	// other than the default) that only a signing daemon uses.
	signOnly []string
}

// signOnlySettings are the flags that mean something with --sign-key only.
var signOnlySettings = []string{"checkpoint-records", "checkpoint-interval", "heartbeat"}

// setting is one flag, its environment variable (how `docker plugin set`
// configures a managed plugin) and its default.
type setting struct {
	flag, env, def, help string
	dst                  *string
	boolean              bool
}

func settings(o *serveOptions) []setting {
	return []setting{
		{"socket", "HOSTPASS_SOCKET", "/run/docker/plugins/hostpass.sock", "unix socket to serve on; the driver name is its file name without .sock", &o.socket, false},
		{"audit-log", "HOSTPASS_AUDIT_LOG", "/var/log/hostpass/audit.jsonl", "audit log file (hash-chained JSON lines, fsynced before each reply)", &o.auditLog, false},
		{"audit-max-size", "HOSTPASS_AUDIT_MAX_SIZE", "64MiB", "rotate the audit log at this size (bytes, or with KiB, MiB, GiB; 0: only on SIGHUP)", &o.auditMaxSize, false},
		{"seal-key", "HOSTPASS_SEAL_KEY", "", "sealing key file (hostpass audit keygen): seal records with a forward-secure HMAC; empty: plain SHA-256 chain", &o.sealKey, false},
		{"sign-key", "HOSTPASS_SIGN_KEY", "", "signing key file (hostpass audit keygen --sign): keep a Merkle tree of the log and write signed checkpoints, verifiable with FILE.pub alone; replaces sealing (not both)", &o.signKey, false},
		{"checkpoint-records", "HOSTPASS_CHECKPOINT_RECORDS", "1000", "with --sign-key: a checkpoint once this many records are not covered by one", &o.cpRecords, false},
		{"checkpoint-interval", "HOSTPASS_CHECKPOINT_INTERVAL", "1m", "with --sign-key: or this long after the first record not covered", &o.cpInterval, false},
		{"heartbeat", "HOSTPASS_HEARTBEAT", "5m", "with --sign-key: a checkpoint this long after the last one when idle", &o.heartbeat, false},
		{"seal-epoch-records", "HOSTPASS_SEAL_EPOCH_RECORDS", "1000", "evolve the sealing key after this many records", &o.epochRecords, false},
		{"seal-epoch-interval", "HOSTPASS_SEAL_EPOCH_INTERVAL", "1m", "or this long after an epoch's first record, whichever comes first", &o.epochInterval, false},
		{"syslog", "HOSTPASS_SYSLOG", "", "also send records to syslog (RFC 5424): unixgram:///dev/log, unix:///PATH, udp://HOST:PORT or tcp://HOST:PORT; empty: off", &o.syslog, false},
		{"docker-socket", "HOSTPASS_DOCKER_SOCKET", "/var/run/docker.sock", "Docker's API socket, an absolute path or unix:///PATH (as in DOCKER_HOST), for container attribution and --network host auditing", &o.dockerSocket, false},
		{"watch", "HOSTPASS_WATCH", "true", "follow Docker's events; --watch=false: the driver alone, as without the socket", &o.watch, true},
		{"policy-allow", "HOSTPASS_POLICY_ALLOW", "all", "containers allowed on hostpass networks: all, or rules label:KEY=VALUE, label:KEY, image:PATTERN, service:PATTERN, stack:PATTERN separated by commas", &o.policyAllow, false},
		{"policy-stop", "HOSTPASS_POLICY_STOP", "false", "stop a container that the policy does not allow; false: record the violation only", &o.policyStop, true},
		{"state-dir", "HOSTPASS_STATE_DIR", "/var/lib/hostpass", "directory for the known networks", &o.stateDir, false},
		{"log-level", "HOSTPASS_LOG_LEVEL", "info", "log level: " + strings.Join(logLevels(), ", "), &o.logLevel, false},
		{"metrics", "HOSTPASS_METRICS", "", "serve Prometheus metrics on /metrics at unix:///PATH or tcp://127.0.0.1:PORT (loopback only: the endpoint has no authentication); empty: off", &o.metrics, false},
	}
}

// daemonCommands are the commands that need Linux: serve.
func daemonCommands() []*cobra.Command { return []*cobra.Command{newServeCommand()} }

func newServeCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve Docker's network driver API on a unix socket",
		Long: `Serve Docker's network driver API on a unix socket, auditing every call.

Each flag has an environment variable, shown beside it: the variable, when
set, replaces the default, and the flag replaces both. SIGHUP rotates the
audit log; SIGTERM lets calls in flight finish and stops.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.signOnly = given(cmd.Flags(), settings(&o), signOnlySettings)
			return runServe(cmd, o)
		},
	}
	flags := cmd.Flags()
	flags.SortFlags = false
	for _, s := range settings(&o) {
		def := s.def
		if v, ok := os.LookupEnv(s.env); ok && v != "" {
			def = v
		}
		usage := fmt.Sprintf("%s (env %s)", s.help, s.env)
		if s.boolean {
			*s.dst = def
			flags.Var((*boolString)(s.dst), s.flag, usage)
			flags.Lookup(s.flag).NoOptDefVal = "true"
			continue
		}
		flags.StringVar(s.dst, s.flag, def, usage)
	}
	return cmd
}

// given names, of the flags in names, those given on the command line, or
// through their variable set to other than the default (a managed plugin's
// config.json sets every variable to its default).
func given(flags *pflag.FlagSet, all []setting, names []string) []string {
	var out []string
	for _, s := range all {
		if !slices.Contains(names, s.flag) {
			continue
		}
		if flags.Changed(s.flag) {
			out = append(out, "--"+s.flag)
		} else if v := os.Getenv(s.env); v != "" && !sameValue(v, s.def) {
			out = append(out, s.env)
		}
	}
	return out
}

// sameValue says whether a setting's text means its default: 300s is 5m,
// 01000 is 1000 (text neither parses as is compared as it is).
func sameValue(v, def string) bool {
	if a, err := time.ParseDuration(v); err == nil {
		b, err := time.ParseDuration(def)
		return err == nil && a == b
	}
	if a, err := strconv.ParseInt(v, 10, 64); err == nil {
		b, err := strconv.ParseInt(def, 10, 64)
		return err == nil && a == b
	}
	return v == def
}

// boolString is a boolean flag kept as its text: --watch, --watch=false.
// It stays text so that check refuses a bad HOSTPASS_WATCH as it would a
// bad --watch.
type boolString string

var _ pflag.Value = (*boolString)(nil)

func (b *boolString) String() string { return string(*b) }
func (b *boolString) Type() string   { return "bool" }
func (b *boolString) IsBoolFlag() bool {
	return true
}

func (b *boolString) Set(s string) error {
	if _, err := strconv.ParseBool(s); err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*b = boolString(s)
	return nil
}

func runServe(cmd *cobra.Command, o serveOptions) error {
	cfg, level, err := o.check()
	if err != nil {
		return refused(err)
	}
	// Nothing the daemon logs may block a call: stdout and stderr are
	// pipes that nobody may be draining (see package logout).
	var lost logout.Observer // nil, not a nil *Metrics in an interface
	if cfg.Metrics != nil {
		lost = cfg.Metrics
	}
	stdout := logout.NewObserved(cmd.OutOrStdout(), logout.DefaultSize, lost)
	stderr := logout.NewObserved(cmd.ErrOrStderr(), logout.DefaultSize, lost)
	defer stdout.Close(2 * time.Second)
	defer stderr.Close(2 * time.Second)
	stdlog.SetOutput(stderr) // what libraries log with the standard logger
	log := logrus.New()
	log.SetOutput(stdout) // a managed plugin's stdout reaches dockerd's log at info
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano})
	log.SetLevel(level)
	cfg.Log = log
	if err := daemon.Run(context.Background(), cfg); err != nil {
		log.WithError(err).Error("hostpass stopped")
		return &exitError{code: exitFailed}
	}
	return nil
}

// check converts the settings: every one that can be wrong is refused
// before anything starts, naming its flag and what it accepts.
func (o serveOptions) check() (daemon.Config, logrus.Level, error) {
	c := daemon.Config{
		Socket: o.socket, AuditLog: o.auditLog, Syslog: o.syslog, StateDir: o.stateDir,
		Version: version,
	}
	level, err := logrus.ParseLevel(o.logLevel)
	if err != nil {
		return c, level, fmt.Errorf("unknown log level %q; accepted: %s", o.logLevel, strings.Join(logLevels(), ", "))
	}
	if c.Audit.MaxSize, err = parseSize(o.auditMaxSize); err != nil {
		return c, level, fmt.Errorf("--audit-max-size: %w", err)
	}
	if o.sealKey != "" && o.signKey != "" {
		return c, level, errors.New("--sign-key and --seal-key: a log is signed or sealed, not both (one epoch clock, one kind of key); give --sign-key alone for a new log, or --seal-key alone to go on with a sealed one")
	}
	if c.Audit.SignKey = o.signKey; o.signKey != "" {
		if err := checkSignKey(o.signKey); err != nil {
			return c, level, fmt.Errorf("--sign-key: %w", err)
		}
	}
	if c.Audit.CheckpointRecords, err = strconv.Atoi(o.cpRecords); err != nil || c.Audit.CheckpointRecords < 1 {
		return c, level, fmt.Errorf("--checkpoint-records: %q is not a whole number of records, 1 or more", o.cpRecords)
	}
	if c.Audit.CheckpointInterval, err = parseSecondOrMore(o.cpInterval); err != nil {
		return c, level, fmt.Errorf("--checkpoint-interval: %w", err)
	}
	if c.Audit.Heartbeat, err = parseSecondOrMore(o.heartbeat); err != nil {
		return c, level, fmt.Errorf("--heartbeat: %w", err)
	}
	if o.signKey == "" && len(o.signOnly) > 0 {
		names, has, its := strings.Join(o.signOnly, " and "), "has", "its default"
		if len(o.signOnly) > 1 {
			has, its = "have", "their defaults"
		}
		return c, level, fmt.Errorf("%s %s no effect without --sign-key (HOSTPASS_SIGN_KEY): checkpoints are written by a signing daemon only; give --sign-key FILE too, or leave %s unset (or at %s)", names, has, names, its)
	}
	if c.Audit.SealKey = o.sealKey; o.sealKey != "" {
		if err := checkSealKey(o.sealKey); err != nil {
			return c, level, fmt.Errorf("--seal-key: %w", err)
		}
	}
	if o.syslog != "" {
		if _, _, _, err := sink.ParseAddr(o.syslog); err != nil {
			return c, level, fmt.Errorf("--syslog: %w; empty: off", err)
		}
	}
	if c.Audit.EpochRecords, err = strconv.Atoi(o.epochRecords); err != nil || c.Audit.EpochRecords < 1 {
		return c, level, fmt.Errorf("--seal-epoch-records: %q is not a whole number of records, 1 or more", o.epochRecords)
	}
	if c.Audit.EpochInterval, err = parseInterval(o.epochInterval); err != nil {
		return c, level, fmt.Errorf("--seal-epoch-interval: %w", err)
	}
	if c.DockerSocket, err = parseDockerSocket(o.dockerSocket); err != nil {
		return c, level, fmt.Errorf("--docker-socket: %w", err)
	}
	if c.Watch, err = strconv.ParseBool(o.watch); err != nil {
		return c, level, fmt.Errorf("--watch: %q is not true or false", o.watch)
	}
	if c.PolicyStop, err = strconv.ParseBool(o.policyStop); err != nil {
		return c, level, fmt.Errorf("--policy-stop: %q is not true or false", o.policyStop)
	}
	if c.Policy, err = watcher.ParsePolicy(o.policyAllow); err != nil {
		return c, level, fmt.Errorf("--policy-allow: %w", err)
	}
	if o.metrics != "" {
		if c.MetricsNetwork, c.MetricsAddress, err = metrics.ParseAddr(o.metrics); err != nil {
			return c, level, fmt.Errorf("--metrics: %w", err)
		}
		c.Metrics = metrics.New(version, commit)
	}
	return c, level, nil
}

// checkSealKey reads the key file as the audit log will, so that a missing or
// damaged one is refused before anything starts rather than failing the
// daemon once it runs. The key itself is not kept here.
func checkSealKey(path string) error {
	_, key, err := audit.ReadKeyFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("%w; want the daemon's copy of a key made by 'hostpass audit keygen FILE', or empty for a plain SHA-256 chain", err)
		}
		return err
	}
	clear(key)
	return nil
}

// checkSignKey reads the signing key file as the audit log will, so that a
// missing or damaged one is refused before anything starts.
func checkSignKey(path string) error {
	k, err := audit.ReadSignKeyFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("%w; want the key file made by 'hostpass audit keygen --sign FILE', or empty for no signing", err)
		}
		return err
	}
	k.Wipe()
	return nil
}

// parseSize reads a byte count: 1048576, 64MiB, 512KiB, 1GiB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || n < 0 {
				break
			}
			if n > math.MaxInt64/u.mult {
				return 0, fmt.Errorf("%q is too large: at most %d bytes", s, int64(math.MaxInt64))
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("%q is not a size: want bytes, or a number with KiB, MiB or GiB (64MiB)", s)
}

// parseInterval reads a positive duration: 30s, 1m, 1h30m.
func parseInterval(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as 30s or 1m", s)
	}
	return d, nil
}

// parseSecondOrMore reads a checkpoint schedule's duration: each checkpoint
// is a signed record, fsynced, and verify allows a heartbeat a second of
// slack, so one every fraction of a second is refused.
func parseSecondOrMore(s string) (time.Duration, error) {
	d, err := parseInterval(s)
	if err == nil && d < time.Second {
		return 0, fmt.Errorf("%q is less than a second: each checkpoint is a signed record, fsynced, and verify allows a heartbeat a second of slack; give 1s or more, such as 30s or 1m", s)
	}
	return d, err
}

// parseDockerSocket reads Docker's API socket as an absolute path or a
// unix:///PATH URL, the form DOCKER_HOST uses, and returns the path. Docker
// over TCP or SSH is refused: hostpass runs beside its dockerd and talks to
// it over the socket. Anything starting with unix: must be such a URL: taken
// as a path, unix:/var/run/docker.sock would be dialled as a relative file
// and retried for ever.
func parseDockerSocket(s string) (string, error) {
	const accepted = "accepted: an absolute path (/var/run/docker.sock) or a unix:// URL with one (unix:///var/run/docker.sock)"
	path := s
	switch {
	case s == "":
		return "", fmt.Errorf("empty; %s", accepted)
	case strings.HasPrefix(strings.ToLower(s), "unix:"):
		u, err := url.Parse(s)
		if err != nil || !strings.HasPrefix(s[len("unix:"):], "///") || u.Host != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("%q is not a unix:// URL with an absolute path (three slashes); %s", s, accepted)
		}
		path = u.Path
	case filepath.IsAbs(s):
	case strings.Contains(s, "://"):
		return "", fmt.Errorf("%q is not a unix socket; %s", s, accepted)
	default:
		return "", fmt.Errorf("%q is a relative path, which would depend on the daemon's working directory; %s", s, accepted)
	}
	if path = filepath.Clean(path); path == "/" {
		return "", fmt.Errorf("%q names the root directory, not a socket; %s", s, accepted)
	}
	return path, nil
}

func logLevels() []string {
	out := make([]string, 0, len(logrus.AllLevels))
	for _, l := range logrus.AllLevels {
		out = append(out, l.String())
	}
	return out
}
