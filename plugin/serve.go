package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/driver"
	"github.com/hostpass/hostpass/hostview"
	"github.com/hostpass/hostpass/server"
	"github.com/hostpass/hostpass/sink"
	"github.com/hostpass/hostpass/watcher"
)

// shutdownGrace bounds how long calls in flight may take once SIGTERM came.
const shutdownGrace = 10 * time.Second

type serveOptions struct {
	socket        string
	auditLog      string
	auditMaxSize  string
	sealKey       string
	epochRecords  string
	epochInterval string
	syslog        string
	dockerSocket  string
	watch         string
	policyAllow   string
	policyStop    string
	stateDir      string
	logLevel      string
}

// setting is one flag, its environment variable (how `docker plugin set`
// configures a managed plugin) and its default.
type setting struct {
	flag, env, def, help string
	dst                  *string
}

func settings(o *serveOptions) []setting {
	return []setting{
		{"socket", "HOSTPASS_SOCKET", "/run/docker/plugins/hostpass.sock", "unix socket to serve on; the driver name is its file name without .sock", &o.socket},
		{"audit-log", "HOSTPASS_AUDIT_LOG", "/var/log/hostpass/audit.jsonl", "audit log file (hash-chained JSON lines, fsynced before each reply)", &o.auditLog},
		{"audit-max-size", "HOSTPASS_AUDIT_MAX_SIZE", "64MiB", "rotate the audit log at this size (bytes, or with KiB, MiB, GiB; 0: only on SIGHUP)", &o.auditMaxSize},
		{"seal-key", "HOSTPASS_SEAL_KEY", "", "sealing key file (hostpass audit keygen): seal records with a forward-secure HMAC; empty: plain SHA-256 chain", &o.sealKey},
		{"seal-epoch-records", "HOSTPASS_SEAL_EPOCH_RECORDS", "1000", "evolve the sealing key after this many records", &o.epochRecords},
		{"seal-epoch-interval", "HOSTPASS_SEAL_EPOCH_INTERVAL", "1m", "or this long after an epoch's first record, whichever comes first", &o.epochInterval},
		{"syslog", "HOSTPASS_SYSLOG", "", "also send records to syslog (RFC 5424): unixgram:///dev/log, unix:///PATH, udp://HOST:PORT or tcp://HOST:PORT; empty: off", &o.syslog},
		{"docker-socket", "HOSTPASS_DOCKER_SOCKET", "/var/run/docker.sock", "Docker's API socket, for container attribution and --network host auditing", &o.dockerSocket},
		{"watch", "HOSTPASS_WATCH", "true", "follow Docker's events (true or false); false: the driver alone, as without the socket", &o.watch},
		{"policy-allow", "HOSTPASS_POLICY_ALLOW", "all", "containers allowed on hostpass networks: all, or rules label:KEY=VALUE, label:KEY, image:PATTERN separated by commas", &o.policyAllow},
		{"policy-stop", "HOSTPASS_POLICY_STOP", "false", "stop a container that the policy does not allow (true or false); false: record the violation only", &o.policyStop},
		{"state-dir", "HOSTPASS_STATE_DIR", "/var/lib/hostpass", "directory for the known networks", &o.stateDir},
		{"log-level", "HOSTPASS_LOG_LEVEL", "info", "log level: " + strings.Join(logLevels(), ", "), &o.logLevel},
	}
}

// serveFlags defines the flags; an environment variable, when set, replaces
// the built-in default, and a flag replaces both.
func serveFlags(o *serveOptions, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("hostpass serve", flag.ContinueOnError)
	fs.SetOutput(out)
	for _, s := range settings(o) {
		def := s.def
		if v, ok := os.LookupEnv(s.env); ok && v != "" {
			def = v
		}
		fs.StringVar(s.dst, s.flag, def, fmt.Sprintf("%s (env %s)", s.help, s.env))
	}
	fs.Usage = func() {
		fmt.Fprintln(out, "Usage: hostpass serve [flags]\n\nFlags (an environment variable replaces the default; a flag replaces both):")
		fs.PrintDefaults()
	}
	return fs
}

func runServe(args []string, stdout, stderr io.Writer) int {
	var o serveOptions
	fs := serveFlags(&o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hostpass serve: unexpected argument %q; it takes flags only\n", fs.Arg(0))
		return 2
	}
	cfg, err := o.check()
	if err != nil {
		fmt.Fprintf(stderr, "hostpass serve: %v\n", err)
		return 2
	}
	log := logrus.New()
	log.SetOutput(stdout) // a managed plugin's stdout reaches dockerd's log at info
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano})
	log.SetLevel(cfg.level)
	if err := serve(cfg, log); err != nil {
		log.WithError(err).Error("hostpass stopped")
		return 1
	}
	return 0
}

// serveConfig is serveOptions checked and converted: every setting that can
// be wrong is refused before anything starts.
type serveConfig struct {
	serveOptions
	level             logrus.Level
	audit             audit.Options
	watch, policyStop bool
	policy            watcher.Policy
}

func (o serveOptions) check() (serveConfig, error) {
	c := serveConfig{serveOptions: o}
	var err error
	if c.level, err = logrus.ParseLevel(o.logLevel); err != nil {
		return c, fmt.Errorf("unknown log level %q; accepted: %s", o.logLevel, strings.Join(logLevels(), ", "))
	}
	if c.audit.MaxSize, err = parseSize(o.auditMaxSize); err != nil {
		return c, fmt.Errorf("--audit-max-size: %w", err)
	}
	c.audit.SealKey = o.sealKey
	if c.audit.EpochRecords, err = strconv.Atoi(o.epochRecords); err != nil || c.audit.EpochRecords < 1 {
		return c, fmt.Errorf("--seal-epoch-records: %q is not a whole number of records, 1 or more", o.epochRecords)
	}
	if c.audit.EpochInterval, err = time.ParseDuration(o.epochInterval); err != nil || c.audit.EpochInterval <= 0 {
		return c, fmt.Errorf("--seal-epoch-interval: %q is not a positive duration such as 30s or 1m", o.epochInterval)
	}
	if c.watch, err = strconv.ParseBool(o.watch); err != nil {
		return c, fmt.Errorf("--watch: %q is not true or false", o.watch)
	}
	if c.policyStop, err = strconv.ParseBool(o.policyStop); err != nil {
		return c, fmt.Errorf("--policy-stop: %q is not true or false", o.policyStop)
	}
	if c.policy, err = watcher.ParsePolicy(o.policyAllow); err != nil {
		return c, fmt.Errorf("--policy-allow: %w", err)
	}
	return c, nil
}

func serve(cfg serveConfig, log *logrus.Logger) error {
	name := strings.TrimSuffix(filepath.Base(cfg.socket), ".sock")
	entry := log.WithField("driver", name)
	hostname, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("reading the hostname: %w", err)
	}
	ao := cfg.audit
	ao.Host, ao.Driver, ao.Log = hostname, name, entry
	var syslog *sink.Syslog
	if cfg.syslog != "" {
		if syslog, err = sink.NewSyslog(cfg.syslog, hostname, entry); err != nil {
			return err
		}
		defer syslog.Close(2 * time.Second)
	}
	// Sinks get each record once it is durable; none can delay or fail a
	// call: the file alone decides.
	ao.Mirror = func(rec audit.Record, line []byte) {
		entry.WithField("record", string(line)).Info("audit")
		if syslog != nil {
			syslog.Send(rec.Event, rec.Outcome == audit.Refused, line)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	view, err := hostview.Start(ctx, entry)
	if err != nil {
		return fmt.Errorf("watching the host's links over netlink: %w", err)
	}
	auditLog, err := audit.OpenWith(cfg.auditLog, ao)
	if err != nil {
		return err
	}
	d, err := driver.New(driver.Config{
		Name: name, Hostname: hostname, StateDir: cfg.stateDir, Audit: auditLog,
		HostInterfaces: view.Snapshot, Log: entry,
	})
	if err != nil {
		return err
	}
	watcherCtx, stopWatcher := context.WithCancel(ctx)
	defer stopWatcher()
	watcherDone, err := startWatcher(watcherCtx, cfg, d, auditLog, view, hostname, name, entry)
	if err != nil {
		return err
	}
	l, err := listen(cfg.socket)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: server.New(d, entry), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	entry.WithFields(logrus.Fields{"socket": cfg.socket, "audit_log": cfg.auditLog, "sealed": cfg.sealKey != "", "syslog": cfg.syslog,
		"state_dir": cfg.stateDir, "version": version}).Info("hostpass serving")

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for stopping := false; !stopping; {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				if err := auditLog.Rotate(); err != nil {
					entry.WithError(err).Error("SIGHUP: cannot rotate the audit log")
				}
				continue
			}
			entry.WithField("signal", sig.String()).Info("stopping: letting calls in flight finish")
			stopping = true
		case err := <-served:
			return fmt.Errorf("serving %s: %w", cfg.socket, err)
		}
	}
	// Shutdown closes the listener, then waits for calls in flight to
	// answer; their records are already durable when they do.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	os.Remove(cfg.socket)
	stopWatcher()
	<-watcherDone
	if err := auditLog.Close(); err != nil {
		return err
	}
	if shutdownErr != nil {
		return fmt.Errorf("calls still in flight after %s: %w", shutdownGrace, shutdownErr)
	}
	entry.Info("hostpass stopped")
	return nil
}

// startWatcher starts following Docker's events beside the driver, unless
// told not to. A missing socket is said once; the watcher keeps trying (a
// legacy plugin starts before Docker), and the driver works meanwhile.
func startWatcher(ctx context.Context, cfg serveConfig, d *driver.Driver, auditLog *audit.Log, view *hostview.View, hostname, name string, log *logrus.Entry) (done <-chan struct{}, err error) {
	finished := make(chan struct{})
	if !cfg.watch {
		log.Info("watcher off (--watch=false): no container attribution, no --network host auditing; the driver audits as usual")
		close(finished)
		return finished, nil
	}
	engine, err := watcher.NewDockerEngine(cfg.dockerSocket)
	if err != nil {
		return nil, err
	}
	w, err := watcher.New(watcher.Config{
		Engine: engine, Source: cfg.dockerSocket, Audit: auditLog, Known: d.Knows, HostInterfaces: view.Snapshot,
		Policy: cfg.policy, StopViolators: cfg.policyStop, StateDir: cfg.stateDir, Host: hostname, Driver: name, Log: log,
	})
	if err != nil {
		return nil, err
	}
	go func() { w.Run(ctx); close(finished) }()
	return finished, nil
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

// listen opens the unix socket. A socket left by a killed daemon is replaced;
// one a live daemon answers on is not.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s is in use by a running daemon; stop it first or choose another --socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// Only root and Docker need the socket.
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func logLevels() []string {
	out := make([]string, 0, len(logrus.AllLevels))
	for _, l := range logrus.AllLevels {
		out = append(out, l.String())
	}
	return out
}
