package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
)

// Sealing: in a sealed log every record's hash is an HMAC under the key of
// its epoch. The key evolves one way (NextKey) after an audit.epoch record,
// and the old key is wiped from memory and from the key file (keyfile.go),
// so that whoever takes the host later cannot reseal earlier records.

// keyLabel separates hostpass's key evolution from any other use of SHA-256.
const keyLabel = "hostpass audit seal key evolution v1\x00"

// NextKey is the one-way step from one epoch's sealing key to the next:
// SHA-256(label || key). Knowing a key gives every later one, never an
// earlier one.
func NextKey(key []byte) []byte {
	h := sha256.New()
	h.Write([]byte(keyLabel))
	h.Write(key)
	return h.Sum(nil)
}

// hasher computes record hashes: SHA-256, or HMAC-SHA256 under key.
func hasher(key []byte) hash.Hash {
	if key == nil {
		return sha256.New()
	}
	return hmac.New(sha256.New, key)
}

// maxKeySteps bounds the key steps verify takes to reach a record's epoch,
// so that a forged epoch far ahead is reported in seconds, not computed for
// hours: 16.7 million epochs, 32 years of one evolution a minute (a var so
// that the fuzz test can lower it).
var maxKeySteps uint64 = 1 << 24

// evolve ends the sealing epoch: an audit.epoch record sealed under the
// current key, then the key steps forward and the old one is wiped from
// memory and from the key file. If the record cannot be written the key
// stays (the next batch or tick tries again): an epoch must not end without
// its record, or a verifier could not tell evolution from truncation.
func (l *Log) evolve() {
	c := &l.c
	if c.sign != nil {
		l.evolveSigned(false)
		return
	}
	if c.keyFileStale != nil {
		if c.keyFileStale = overwriteKeyFile(l.o.SealKey, c.epoch, c.key); c.keyFileStale != nil {
			c.evolveDue = true // retried on the retry tick
			return
		}
	}
	next := c.epoch + 1
	marker := l.selfRecord(EpochEnd, "")
	marker.NextEpoch = &next
	if err := l.flush([]Record{marker}); err != nil {
		if !c.evolveFailed {
			l.o.Log.WithError(err).Error("audit log: cannot end the sealing epoch; the key evolves once the log is writable")
		}
		c.evolveDue, c.evolveFailed = true, true // retried on the retry tick
		return
	}
	l.advanceKey(next)
}

// advanceKey steps the key forward to epoch and overwrites the key file.
func (l *Log) advanceKey(epoch uint64) {
	c := &l.c
	for c.epoch < epoch {
		next := NextKey(c.key)
		wipe(c.key)
		c.key = next
		c.epoch++
	}
	c.epochRecords, c.evolveDue, c.evolveFailed = 0, false, false
	if c.epochTimer != nil {
		c.epochTimer.Stop()
		c.epochTimer = nil
	}
	if c.keyFileStale = overwriteKeyFile(l.o.SealKey, c.epoch, c.key); c.keyFileStale != nil {
		l.o.Log.WithError(c.keyFileStale).Error("audit log: cannot overwrite the sealing key file; an older key stays on disk, and no further epoch ends until it can be")
	}
	l.o.Log.WithField("epoch", c.epoch).Debug("audit log: sealing key evolved")
}
