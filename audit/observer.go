package audit

import "time"

// Observer hears what the writer does, for metrics (package metrics). Its
// methods run on whichever goroutine commits (a caller, or run), with the
// log's lock held, between a batch's fsync and its callers' answers, so
// they must be quick and never block.
type Observer interface {
	// Synced: recs became durable in one write and one fsync, which took
	// took.
	Synced(took time.Duration, recs []Record)
	// MirrorDropped: the mirror (daemon log, syslog) was behind, and a
	// record was not copied to it; the file has it.
	MirrorDropped()
	// Failed: a write or fsync of the log failed (disk full, I/O error),
	// and the calls whose records it held were refused.
	Failed(err error)
}
