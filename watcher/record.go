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
func (w *Watcher) record(event, containerID string, late bool, detail string) audit.Record {
	return audit.Record{
		Time: time.Now().UTC(), Event: event, Outcome: audit.OK, Host: w.cfg.Host,
		Container: &audit.Container{ID: containerID}, ObservedLate: late, Detail: detail,
	}
}

// retryWrite bounds the wait between two offers of a record to an audit log
// that cannot take it, and between two inspects of a container.
const retryWrite = 5 * time.Second

// write makes rec durable, on hostpass network networkID if not empty. While
// the audit log cannot take it, write offers it again (this container's
// lane waits; the others go on), so that neither the state nor since moves
// past a record only memory holds. It fails only when ctx ends first.
func (w *Watcher) write(ctx context.Context, rec audit.Record, networkID string) error {
	if networkID != "" {
		tag, internal, adopted, _ := w.cfg.Known(networkID)
		rec.Driver, rec.NetworkID, rec.Tag = w.cfg.Driver, networkID, tag
		rec.Internal, rec.Adopted = audit.Flag(internal), audit.Flag(adopted)
	}
	wait := minBackoff
	for {
		err := w.cfg.Audit.Append(rec)
		if err == nil {
			return nil
		}
		if wait == minBackoff {
			w.cfg.Log.WithError(err).WithField("event", rec.Event).WithField("container", rec.Container.ID).
				Error("watcher: the audit log cannot take the record; offering it again until it can, and holding this container's later events")
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
