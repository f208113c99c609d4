package audit

import (
	"encoding/json"
	"errors"
	"os"
	"time"
)

// mtimeSlack covers the difference between a file's mtime, from a coarser
// clock, and the times of the records in it.
const mtimeSlack = time.Minute

// Replay calls fn, in log order, with every record of the log whose current
// file is path that has one of events and a time at or after since. Files
// last modified well before since hold no such record and are not read (a
// file's mtime comes from a coarser clock than a record's time: mtimeSlack
// covers the difference). A log that does not exist yet has no records.
// With since zero (the caller has saved nothing yet), only the current file
// is read: it holds what a first run wrote before a crash, and the rotation
// size bounds it, where the whole log may hold a million records.
func Replay(path string, since time.Time, events []Event, fn func(Record) error) error {
	files, err := Files(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if since.IsZero() && len(files) > 1 {
		files = files[len(files)-1:]
	}
	var recent []string
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && !st.ModTime().Before(since.Add(-mtimeSlack)) {
			recent = append(recent, f)
		}
	}
	want := map[Event]bool{}
	for _, e := range events {
		want[e] = true
	}
	return queryAll(recent, Filter{Since: since}, func(e *Entry, line []byte) error {
		if !want[e.Event] {
			return nil
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return nil // not a record: verify reports it
		}
		return fn(r)
	})
}
