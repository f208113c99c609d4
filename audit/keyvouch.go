package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
)

// The writer signs over the tree it rebuilt from the log on disk. After a
// crash, a keyless editor may have rewritten that log (edited a record,
// dropped the checkpoints after it, chained it again, removed the tree
// store), or poisoned the store's prefix of removed files: signing over it
// would launder the edit. So before a (re)opened tree is signed over, it is
// checked against what the key itself vouches for: the tree its
// certification pins, and the checkpoints it signed in this epoch.

// errNotVouched marks a tree that is not what the signing key signed.
var errNotVouched = errors.New("the log on disk is not what this signing key signed")

// vouchSlack is the records a log may hold after its last checkpoint
// beyond CheckpointRecords-1. Every write that brings CheckpointRecords
// records since the last checkpoint ends with one (withCheckpoint, which
// counts the records kept during an outage and writes audit.lost before
// it), and a start's audit.restart, torn tail and owed audit.epoch share
// the write of its start checkpoint; the slack is for safety, and it is
// what a keyless editor can rewrite beyond the records no checkpoint
// covers yet.
const vouchSlack = 2

// checkVouched checks t, the tree rebuilt from the log, against the key:
// (a) its root at the size the key's certification pins (epochs ≥ 1) is
// the pinned root; (b) every audit.checkpoint of the key's epoch after it
// opens with the key and its root is t's at its size; (c) after the last
// of them (or the pinned size) come at most CheckpointRecords + vouchSlack
// signed records (withCheckpoint ends every write that brings
// CheckpointRecords with a checkpoint), or checkpoints were removed.
func (l *Log) checkVouched(t *Tree) error {
	key := l.c.sign.key
	var pinned CertTree
	if cert := key.Cert(); cert != nil && !l.c.sign.fresh {
		var err error
		if _, _, _, pinned, err = readCert(cert); err != nil {
			return fmt.Errorf("the signing key's certification %w", err)
		}
		if pinned.Size > t.Size() {
			return l.notVouched("the key's certification pins a tree of %d records, and the log holds %d", pinned.Size, t.Size())
		}
		root, err := t.RootAt(pinned.Size)
		if err != nil {
			return err
		}
		if root != pinned.Root {
			return l.notVouched("the tree of the log's first %d records has root %s, and the key's certification (epoch %d) pins %s", pinned.Size, root, key.Epoch(), pinned.Root)
		}
	}
	v, err := note.NewVerifier(key.VerifierKey())
	if err != nil {
		return err
	}
	files, err := Files(l.path)
	if err != nil {
		return err
	}
	after, since := uint64(pinned.Size), 0 // after: the last record vouched for
	signed := pinned.Size > 0              // from the first signed record on, every record counts
	for _, path := range files {
		err := eachBatch(path, func(*batch) {}, func(b *batch) error {
			for _, line := range b.lines {
				_, seq, event, ok := fastHead(line)
				if !ok || seq <= uint64(pinned.Size) {
					continue
				}
				signed = signed || bytes.Contains(line, []byte(`"epoch":`))
				if !signed {
					continue // unsigned so far: the key vouches for none of it
				}
				since++
				if event != Checkpoint {
					continue
				}
				var r Record
				if err := json.Unmarshal(line, &r); err != nil || r.Epoch == nil || *r.Epoch != key.Epoch() {
					continue // another epoch's, pinned by the certification
				}
				size, root, err := OpenCheckpoint([]byte(r.Checkpoint), note.VerifierList(v), key.Origin())
				if err != nil {
					return l.notVouched("the audit.checkpoint at seq %d does not open with the key of epoch %d (%v)", seq, key.Epoch(), err)
				}
				want, err := t.RootAt(size)
				if err != nil || size != int64(seq-1) || root != want {
					return l.notVouched("the audit.checkpoint at seq %d signs a tree of %d records with root %s, and the log's first %d records have root %s", seq, size, root, size, want)
				}
				after, since = seq, 0
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if limit := l.o.CheckpointRecords + vouchSlack; since > limit {
		return l.notVouched("%d signed records follow seq %d, the last record a checkpoint of this key covers, where the writer puts a checkpoint at the end of the write that brings %d records (--checkpoint-records) since the last: checkpoints were removed (or --checkpoint-records was lowered since the log was last written; restore it to start)", since, after, l.o.CheckpointRecords)
	}
	return nil
}

// notVouched is the error of a tree the key did not sign, with what to do.
func (l *Log) notVouched(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s; no checkpoint is signed and the key does not step until it is: check the log with `hostpass audit verify --pubkey`, move it aside and start a new signing chain (hostpass audit keygen --sign)",
		errNotVouched, l.path, fmt.Sprintf(format, args...))
}
