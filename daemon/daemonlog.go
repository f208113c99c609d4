package daemon

import (
	"github.com/sirupsen/logrus"

	"github.com/hostpass/hostpass/audit"
)

// recordLevel is the level at which rec is copied into the daemon's log
// (stdout; dockerd's log for a managed plugin). At the default info level
// the log carries what an operator must see: the alarms, at warning
// whatever their outcome (a container that broke the policy, a window the
// watcher did not follow, records lost in an outage, a partial line a crash
// left, an endpoint whose Leave Docker never sent: no refused call shows any of them), and refused records. Every
// other record only at debug: the file and syslog carry them all, and at
// info each call's record would be written twice, and parsed again by
// dockerd; that copy was an eighth of the daemon's CPU at 16 clients.
func recordLevel(rec audit.Record) logrus.Level {
	switch {
	case rec.Event == audit.PolicyViolation, rec.Event == audit.WatchGap, rec.Event == audit.Lost, rec.Event == audit.TornTail, rec.Event == audit.EndpointStale:
		return logrus.WarnLevel
	case rec.Outcome == audit.Refused:
		return logrus.InfoLevel
	}
	return logrus.DebugLevel
}

// logRecord copies rec's line into the daemon's log at recordLevel, if the
// log's level takes it.
func logRecord(entry *logrus.Entry, rec audit.Record, line []byte) {
	if level := recordLevel(rec); entry.Logger.IsLevelEnabled(level) {
		entry.WithField("record", string(line)).Log(level, "audit")
	}
}
