package watcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// A gap is a window in which the watcher was not following Docker's events:
// Docker's event stream broke (dockerd stopped or restarted, or the watcher
// let the stream go because its backlog was full), or hostpass itself was
// not running. One watch.gap record is written per window, once following
// has resumed, so that an auditor can tell "nothing happened" from "we were
// not looking".
//
// from: the last moment the watcher knows it was following. Within a run,
// when the stream broke: the stream is a unix socket, which reports its end
// at once, and events arrive in order, so every event before the break was
// read. Across a restart of hostpass: the later of the last save of the state
// made while following (saved at least every followedEvery, and at a clean
// stop) and the last record the watcher wrote that the state does not
// reflect yet (read back from the log with audit.Replay). A kill -9 thus
// widens the window by at most followedEvery, never narrows it.
//
// to: when following resumed: the new subscription is open and the running
// containers are reconciled. Reconciliation asks Docker after the
// subscription was asked for, so to is at or after the moment Docker began
// streaming to it.
//
// covered: Docker's replay is known to have held every event of the window.
// The watcher subscribes again from since, the time of the last event whose
// records are durable (since <= from), and Docker replays what its history
// still holds from then on. That history is a ring of the last 256 events of
// every kind (moby daemon/events/events.go, eventsLimit = 256, in dockerd
// 20.10 and Docker 29 alike), unfiltered (image, volume, exec events count
// too), and it is lost when dockerd restarts. Whether it still reached back
// to since cannot be told from the replay itself, so the watcher asks
// Docker for the event at exactly since (Engine.Remembers): the event the
// watcher last handled is still there only if no event after it was
// dropped, and a dockerd that restarted has a new ring without it. The
// question is asked after the subscription was made, and the ring only
// loses its oldest events, so a yes then was a yes for the replay too. No
// since (the watcher never handled an event) leaves nothing to ask:
// covered is false. Reconciliation sees the running containers only: a
// container that started and stopped inside a window not covered is not in
// the log.

// followedEvery bounds how stale the saved moment of following can be: a
// crash widens the next gap by at most this much. One small fsynced write a
// minute.
const followedEvery = time.Minute

// openGap is a window not yet recorded; zero from: none is open.
type openGap struct {
	from time.Time
	why  string // what stopped the following, for the record's detail
}

// gapAtStart is the window that the previous run's state leaves open: from
// its last moment of following until now. A state that never followed (a
// first start) opens none: there is nothing the watcher could have missed.
// fromSave says that from is the last save made while following (or, from a
// hostpass that saved no such moment, the last event handled): records
// written after that save may move it later (replay.go).
func gapAtStart(st *state) (g openGap, fromSave bool) {
	from, fromSave := st.Followed, st.Following || st.Followed.IsZero()
	if fromSave && st.Since.After(from) {
		from = st.Since
	}
	if from.IsZero() {
		return openGap{}, false
	}
	why := "hostpass was not running"
	if !fromSave {
		why = "Docker's event stream had broken before hostpass stopped, then hostpass was not running"
	}
	return openGap{from: from, why: why}, fromSave
}

// recordedAt moves the start-up window's from to at, the time of a record
// the previous run wrote after its last save while following: it was still
// following then (replay.go). Called with w.mu held.
func (w *Watcher) recordedAt(at time.Time) {
	if w.gapFromSave && at.After(w.gap.from) {
		w.gap.from = at
	}
}

// stoppedFollowing opens a window at the moment the stream broke, if the
// watcher was following: a stream that broke before the last window was
// recorded extends that window.
func (w *Watcher) stoppedFollowing(why error) {
	now := time.Now().UTC()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.following {
		return
	}
	// following: no window is open (resumedFollowing).
	w.following = false
	w.gap = openGap{from: now, why: fmt.Sprintf("Docker's event stream broke (%v)", why)}
	if errors.Is(why, errBehind) {
		w.gap.why = fmt.Sprintf("the watcher let Docker's event stream go (%v)", why)
	}
	w.changed()
}

// resumedFollowing is called once a subscription from since is open and
// reconciled. It records the open window, if any, in a lane of its own (it
// asks Docker, and the audit log may be slow), and only once that record is
// durable does the watcher count as following: a crash before then leaves
// the window open in the saved state, and the next start records it.
func (w *Watcher) resumedFollowing(ctx context.Context, since time.Time) {
	to := time.Now().UTC()
	w.mu.Lock()
	g := w.gap
	if g.from.IsZero() {
		w.following = true
		w.mu.Unlock()
		w.changed()
		return
	}
	w.mu.Unlock()
	w.lanes.add(gapLane, func() {
		rec := w.gapRecord(ctx, g, to, since)
		if err := w.write(ctx, rec, "", func() {
			w.gap, w.gapFromSave, w.following = openGap{}, false, true
		}); err == nil {
			w.changed()
		}
	})
}

// gapLane is the lane of watch.gap records: no container ID is empty.
const gapLane = ""

// gapRecord is the watch.gap record of window g, which ended at to, after a
// subscription from since.
func (w *Watcher) gapRecord(ctx context.Context, g openGap, to, since time.Time) audit.Record {
	if to.Before(g.from) {
		to = g.from // clocks: never a window that ends before it starts
	}
	covered, why := false, ""
	if since.IsZero() {
		why = "the watcher had handled no event before it, so Docker's replay had nowhere to start from"
	} else {
		cctx, cancel := context.WithTimeout(ctx, w.callTimeout)
		held, err := w.cfg.Engine.Remembers(cctx, since)
		cancel()
		switch {
		case err != nil:
			why = fmt.Sprintf("Docker did not say whether its event history still held the last event handled, at %s (%v)", since.Format(time.RFC3339Nano), err)
		case !held:
			why = fmt.Sprintf("Docker's event history no longer held the last event handled, at %s: Docker keeps its last 256 events and forgets them when it restarts", since.Format(time.RFC3339Nano))
		default:
			covered = true
		}
	}
	detail := fmt.Sprintf("the watcher was not following Docker's events: %s; ", g.why)
	if covered {
		detail += fmt.Sprintf("Docker's replay from the last event handled, at %s, held every event of the window: they were recorded as they came", since.Format(time.RFC3339Nano))
	} else {
		detail += why + "; events of the window may be lost: the running containers were reconciled (records marked observed_late), but a container that started and stopped inside the window is not in this log"
	}
	return audit.Record{
		Event: audit.WatchGap, Outcome: audit.OK, Host: w.cfg.Host,
		Gap: &audit.Gap{From: g.from, To: to, Covered: covered}, Detail: detail,
	}
}
