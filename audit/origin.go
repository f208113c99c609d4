package audit

import (
	"bytes"
	"encoding/json"
	"errors"

	"golang.org/x/mod/sumdb/note"
)

// A signed log's origin, hostpass/<host>/<log ID>, names it in its
// verifier key (<origin>/e0) and in the first line of each checkpoint: a
// verifier of many hosts' logs matches keys and collected checkpoints to
// logs by it.

// PubOrigin is the origin of the log a verifier key (FILE.pub) is for.
func PubOrigin(v note.Verifier) string {
	origin, _, _ := splitKeyName(v.Name())
	return origin
}

// CheckpointOrigin is the origin a checkpoint note names (its first line),
// unverified.
func CheckpointOrigin(msg []byte) string {
	line, _, _ := bytes.Cut(msg, []byte("\n"))
	return string(line)
}

var errFound = errors.New("found")

// LogOrigin is the origin the first checkpoint of a log names, or "" for
// a log with no checkpoint (plain and sealed logs). It reads the first
// record, and of a log whose first record has an epoch (signed or sealed)
// on up to the first checkpoint, wherever it is: it need not be the
// first record.
func LogOrigin(files []string) (string, error) {
	epochs := false
	err := Query(files, Filter{}, func(_ *Entry, line []byte) error {
		epochs = bytes.Contains(line, []byte(`"epoch":`))
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return "", err
	}
	if !epochs {
		return "", nil
	}
	origin := ""
	err = Query(files, Filter{Event: string(Checkpoint)}, func(_ *Entry, line []byte) error {
		var r struct {
			Checkpoint string `json:"checkpoint"`
		}
		if json.Unmarshal(line, &r) == nil && r.Checkpoint != "" {
			origin = CheckpointOrigin([]byte(r.Checkpoint))
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return "", err
	}
	return origin, nil
}

// OriginHost is the host part of an origin hostpass/<host>/<log ID>, or
// "" if origin is not one.
func OriginHost(origin string) string {
	m := originRE.FindString(origin)
	if m == "" {
		return ""
	}
	rest := m[len("hostpass/"):]
	return rest[:len(rest)-17]
}
