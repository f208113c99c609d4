package watcher

import (
	"context"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// withStart returns the container's audit facts with its start time: the
// current run's when it is running, else at, the connect event's time
// (Docker connects networks just before the process starts, when inspect
// still shows the previous run's).
func withStart(c Container, at time.Time) *audit.Container {
	ac := c.Container
	start := at
	if c.Running && !c.StartedAt.IsZero() {
		start = c.StartedAt
	}
	ac.StartedAt = &start
	return &ac
}

// record starts a record about a container. Driver, network and its flags
// are set by write, on records about a hostpass network only: host.* records
// are about Docker's own host driver.
func (w *Watcher) record(event audit.Event, containerID string, late bool, detail string) audit.Record {
	return audit.Record{
		Time: time.Now().UTC(), Event: event, Outcome: audit.OK, Host: w.cfg.Host,
		Container: &audit.Container{ID: containerID}, ObservedLate: late, Detail: detail,
	}
}

// retryWrite bounds the wait between two offers of a record to an audit log
// that cannot take it, and between two inspects of a container.
const retryWrite = 5 * time.Second

// write makes rec durable, on hostpass network networkID if not empty, then
// calls apply (if not nil) with w.mu held, to note in the state what the
// record says. While the audit log cannot take it, write offers it again
// (this container's lane waits; the others go on), so that neither the state
// nor since moves past a record only memory holds. It fails only when ctx
// ends first.
//
// rec's time is set here, and the record counts as in flight until its
// effect is in the state: save keeps auditSince at or before the oldest
// record in flight, so that every record from auditSince on is read again
// after a crash (replay.go), and every one before it is in the saved state.
func (w *Watcher) write(ctx context.Context, rec audit.Record, networkID string, apply func()) error {
	if networkID != "" {
		tag, internal, adopted, _ := w.cfg.Known(networkID)
		rec.Driver, rec.NetworkID, rec.Tag = w.cfg.Driver, networkID, tag
		rec.Internal, rec.Adopted = audit.Flag(internal), audit.Flag(adopted)
	}
	w.mu.Lock()
	rec.Time = time.Now().UTC()
	w.inflight[rec.Time]++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		if w.inflight[rec.Time]--; w.inflight[rec.Time] == 0 {
			delete(w.inflight, rec.Time)
		}
		w.mu.Unlock()
	}()
	wait := minBackoff
	for {
		err := w.cfg.Audit.Append(rec)
		if err == nil {
			if apply != nil {
				w.mu.Lock()
				apply()
				w.reportHostMode() // the record may have opened or closed a session
				w.mu.Unlock()
			}
			return nil
		}
		if wait == minBackoff {
			l := w.cfg.Log.WithError(err).WithField("event", rec.Event)
			if rec.Container != nil {
				l = l.WithField("container", rec.Container.ID)
			}
			l.Error("watcher: the audit log cannot take the record; offering it again until it can, and holding this container's later events")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if wait *= 2; wait > retryWrite {
			wait = retryWrite
		}
	}
}
