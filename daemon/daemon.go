// Package daemon wires hostpass's parts into the running daemon: the audit
// log and its sinks, the host view, the driver, the watcher on Docker's
// events, the HTTP server on the plugin socket, systemd's readiness
// notification and the signals. The command line (package main) checks the
// settings and hands them over as a Config.
package daemon

import (
	"context"
	"fmt"
	stdlog "log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
	"github.com/hostpass/hostpass/driver"
	"github.com/hostpass/hostpass/hostview"
	"github.com/hostpass/hostpass/metrics"
	"github.com/hostpass/hostpass/server"
	"github.com/hostpass/hostpass/sink"
	"github.com/hostpass/hostpass/watcher"
)

// shutdownGrace bounds how long calls in flight may take once the daemon is
// told to stop. A variable only so that a test need not wait 10s.
var shutdownGrace = 10 * time.Second

// Config is the daemon's settings, already checked.
type Config struct {
	// Socket is the plugin socket; the driver's name is its file name
	// without .sock.
	Socket string
	// AuditLog is the audit file; Audit its options (Host, Driver, Mirror
	// and Log are filled in by Run).
	AuditLog string
	Audit    audit.Options
	// Syslog is the syslog sink's URL; empty: off.
	Syslog string
	// Watch follows Docker's events on DockerSocket (a path).
	Watch        bool
	DockerSocket string
	Policy       watcher.Policy
	PolicyStop   bool
	StateDir     string
	// Version is logged at start.
	Version string
	// Metrics, if not nil, is fed by the server and the audit log and
	// served on MetricsNetwork and MetricsAddress (metrics.ParseAddr).
	Metrics                        *metrics.Metrics
	MetricsNetwork, MetricsAddress string
	// Log is the daemon's log. Its output must not block (see package
	// logout): a call would wait on it.
	Log *logrus.Logger
}

// Name is the driver name the socket's path gives.
func (c Config) Name() string { return strings.TrimSuffix(filepath.Base(c.Socket), ".sock") }

// Run serves until ctx is cancelled or SIGTERM or SIGINT arrives, then lets
// calls in flight finish and closes the audit log. SIGHUP rotates the audit
// log. systemd (Type=notify) is told READY=1 once the socket accepts
// connections.
func Run(ctx context.Context, cfg Config) error {
	// A log reader that is gone (a pipe's read end closed) must not end
	// the daemon: by Go's default, a write to stdout or stderr that meets
	// EPIPE raises SIGPIPE, which kills it at its next log line. Ignored,
	// the write fails instead, and the log's writer counts the line lost.
	signal.Ignore(syscall.SIGPIPE)
	name := cfg.Name()
	entry := cfg.Log.WithField("driver", name)
	hostname, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("reading the hostname: %w", err)
	}
	if cfg.Metrics != nil && cfg.MetricsNetwork == "unix" && filepath.Clean(cfg.MetricsAddress) == filepath.Clean(cfg.Socket) {
		return fmt.Errorf("--metrics unix://%s is the plugin socket (--socket); the metrics need a socket of their own, such as %s", cfg.MetricsAddress, filepath.Join(filepath.Dir(cfg.Socket), "metrics.sock"))
	}
	// The sockets' refusals come before the audit log opens: a daemon that
	// cannot serve leaves no records.
	if err := checkSocket(cfg.Socket); err != nil {
		return err
	}
	var metricsL net.Listener
	var metricsErr error
	if cfg.Metrics != nil {
		metricsL, metricsErr = metrics.Listen(cfg.MetricsNetwork, cfg.MetricsAddress)
		if metricsErr != nil && !metrics.InUse(metricsErr) {
			return metricsErr
		}
		if metricsL != nil {
			defer metricsL.Close() // if Run fails before serving it
		}
	}
	ao := cfg.Audit
	ao.Host, ao.Driver, ao.Log = hostname, name, entry
	if cfg.Metrics != nil {
		ao.Observer = cfg.Metrics
		if ao.SignKey != "" {
			cfg.Metrics.Signed()
		}
		if !cfg.Watch {
			cfg.Metrics.WithoutWatcher()
		}
	}
	var syslog *sink.Syslog
	if cfg.Syslog != "" {
		var lost sink.Observer // nil, not a nil *Metrics in an interface
		if cfg.Metrics != nil {
			lost = cfg.Metrics
		}
		if syslog, err = sink.NewSyslogObserved(cfg.Syslog, hostname, entry, lost); err != nil {
			return err
		}
		defer syslog.Close(2 * time.Second)
	}
	// Sinks get each record once it is durable; none can delay or fail a
	// call: the file alone decides.
	ao.Mirror = func(rec audit.Record, line []byte) {
		logRecord(entry, rec, line) // alarms and refusals at info, all at debug
		if syslog != nil {
			chain := sink.Chain{Seq: rec.Seq, Epoch: rec.Epoch, Prev: rec.Prev, Hash: rec.Hash}
			syslog.Send(string(rec.Event), rec.Outcome == audit.Refused, chain, line)
		}
	}
	if syslog == nil {
		// Without syslog, the mirror takes only what the daemon's log
		// shows at its level: at info, the alarms and refusals.
		ao.MirrorWants = func(rec audit.Record) bool { return entry.Logger.IsLevelEnabled(recordLevel(rec)) }
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	view, err := hostview.Start(ctx, entry)
	if err != nil {
		return fmt.Errorf("watching the host's links over netlink: %w", err)
	}
	auditLog, err := audit.OpenWith(cfg.AuditLog, ao)
	if err != nil {
		return err
	}
	defer auditLog.Close() // a no-op after the Close below
	// The run's first records (audit.restart, a signed log's checkpoint),
	// before the driver or the watcher writes any. An unwritable log does
	// not stop the daemon: they are written once it is writable.
	if err := auditLog.Start(); err != nil {
		entry.WithError(err).Error("audit log: cannot write the start records; they are written once the log is writable")
	}
	d, err := driver.New(driver.Config{
		Name: name, Hostname: hostname, StateDir: cfg.StateDir, Audit: auditLog,
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
	// Whatever way Run returns, the watcher has stopped and saved its state
	// by then, and appends nothing to a closed log. (Deferred after the
	// log's Close, so it runs before it.)
	defer func() { stopWatcher(); <-watcherDone }()
	l, err := Listen(cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Socket)
	var observer server.Observer
	if cfg.Metrics != nil {
		observer = cfg.Metrics
	}
	srv := server.HTTPServer(server.NewObserved(d, entry, observer), stdlog.New(warnWriter{entry}, "", 0))
	served := make(chan error, 1)
	go func() { served <- server.Serve(srv, l) }()
	if cfg.Metrics != nil {
		metricsDone := serveMetrics(ctx, cfg, entry, metricsL, metricsErr)
		defer func() { stop(); <-metricsDone }() // the socket is gone when Run returns
	}
	// The signals are ours before systemd hears READY=1: from then on it
	// may send SIGHUP, whose default action would end the process.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)
	entry.WithFields(logrus.Fields{"socket": cfg.Socket, "audit_log": cfg.AuditLog, "sealed": cfg.Audit.SealKey != "", "signed": cfg.Audit.SignKey != "", "syslog": cfg.Syslog,
		"state_dir": cfg.StateDir, "metrics": cfg.MetricsAddress, "version": cfg.Version}).Info("hostpass serving")
	notify(entry, "READY=1")

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
		case <-ctx.Done():
			entry.Info("stopping: letting calls in flight finish")
			stopping = true
		case err := <-served:
			return fmt.Errorf("serving %s: %w", cfg.Socket, err)
		}
	}
	notify(entry, "STOPPING=1")
	// Shutdown closes the listener, then waits for calls in flight to
	// answer; their records are already durable when they do.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	os.Remove(cfg.Socket)
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

// metricsRetry is how long the metrics endpoint waits before trying its
// address again. A variable only so that a test need not wait 10 s.
var metricsRetry = 10 * time.Second

// serveMetrics serves the metrics on l until ctx ends, and is done once
// their socket is closed (and a unix one removed).
//
// Run stops at start on an address that cannot work until someone fixes
// it (see metrics.InUse). One that is in use (a port another process took,
// a socket a live process answers on; err) does not stop the daemon: a
// process that squats the port while hostpass restarts would otherwise
// stop every hostpass network. It is logged as an error and tried again
// every metricsRetry while the driver serves; the log says when the
// endpoint listens at last. (A malformed value is refused before Run, by
// metrics.ParseAddr.)
func serveMetrics(ctx context.Context, cfg Config, log *logrus.Entry, l net.Listener, err error) <-chan struct{} {
	done := make(chan struct{})
	log = log.WithField("metrics", cfg.MetricsNetwork+"://"+cfg.MetricsAddress)
	go func() {
		defer close(done)
		if err != nil {
			log.WithError(err).Errorf("metrics endpoint: cannot listen, the address is in use; the driver serves without it, and the address is tried again every %s until it is free", metricsRetry)
		}
		for last := err; err != nil; {
			select {
			case <-ctx.Done():
				return
			case <-time.After(metricsRetry):
			}
			if l, err = metrics.Listen(cfg.MetricsNetwork, cfg.MetricsAddress); err != nil && err.Error() != last.Error() {
				log.WithError(err).Errorf("metrics endpoint: still cannot listen; tried again every %s", metricsRetry)
				last = err
			}
		}
		log.Info("metrics endpoint listening")
		srv := cfg.Metrics.Server(stdlog.New(warnWriter{log}, "", 0))
		served := make(chan error, 1)
		go func() { served <- metrics.Serve(srv, l) }()
		select {
		case <-ctx.Done():
			srv.Close() // closes the listener, which removes a unix socket
			<-served
		case err := <-served:
			log.WithError(err).Error("metrics endpoint stopped; the driver goes on")
			l.Close()
		}
	}()
	return done
}

// startWatcher starts following Docker's events beside the driver, unless
// told not to. A missing socket is said once; the watcher keeps trying (a
// legacy plugin starts before Docker), and the driver works meanwhile.
func startWatcher(ctx context.Context, cfg Config, d *driver.Driver, auditLog *audit.Log, view *hostview.View, hostname, name string, log *logrus.Entry) (done <-chan struct{}, err error) {
	finished := make(chan struct{})
	if !cfg.Watch {
		log.Info("watcher off (--watch=false): no container attribution, no --network host auditing; the driver audits as usual")
		close(finished)
		return finished, nil
	}
	engine, err := watcher.NewDockerEngine(cfg.DockerSocket)
	if err != nil {
		return nil, err
	}
	var observer watcher.Observer // nil, not a nil *Metrics in an interface
	if cfg.Metrics != nil {
		observer = cfg.Metrics
	}
	w, err := watcher.New(watcher.Config{
		Engine: engine, Source: cfg.DockerSocket, Audit: auditLog, Known: d.Lookup, HostInterfaces: view.Snapshot,
		Policy: cfg.Policy, StopViolators: cfg.PolicyStop, StateDir: cfg.StateDir, Host: hostname, Driver: name, Log: log,
		Observer: observer,
	})
	if err != nil {
		return nil, err
	}
	go func() { w.Run(ctx); close(finished) }()
	return finished, nil
}

// warnWriter logs what net/http reports (a bad connection, a handler's
// panic) through the daemon's log, at warning, instead of on stderr.
type warnWriter struct{ log *logrus.Entry }

func (w warnWriter) Write(p []byte) (int, error) {
	w.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}
