package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

// Where a log starts and what seals it: the genesis record (or the start
// the user gave), and under a key, every seal in its epoch's key.

// start checks the first record: the genesis record, sealed in epoch 0
// under a key, or the start the user gave.
func (v *verifier) start(f chainFields, claimed string) error {
	const say = "if you know from elsewhere (a syslog collector, an earlier verify) where the log starts, pass --start SEQ:HASH with that record's seq and hash"
	if s := v.o.Start; s != nil {
		switch {
		case f.Seq != s.Seq:
			return v.problem(f.Seq, MissingStart, fmt.Sprintf("the log starts at seq %d, not at seq %d as --start says", f.Seq, s.Seq))
		case claimed != s.Hash:
			return v.problem(f.Seq, Modified, fmt.Sprintf("the first record, seq %d, has hash %s, not %s as --start says", f.Seq, claimed, s.Hash))
		case v.o.Key != nil && f.Epoch == nil:
			return v.problem(f.Seq, Unsealed, "the log starts with a record that is not sealed: under --key it must start sealed")
		case v.sign != nil && f.Epoch == nil:
			return v.problem(f.Seq, Unsigned, "the log starts with a record that has no epoch: under --pubkey it must start signed")
		case v.sign != nil && *f.Epoch != 0:
			certs := fmt.Sprintf("the certifications of epochs 1 to %d are in the audit.epoch records", *f.Epoch)
			if *f.Epoch == 1 {
				certs = "the certification of epoch 1 is in the audit.epoch record"
			}
			return v.problem(f.Seq, MissingStart, fmt.Sprintf("the log starts in epoch %d: FILE.pub is epoch 0's key, and %s before seq %d, so no key of this log is vouched for; keep the files that hold them, or check the chain alone without --pubkey (--chain-only)", *f.Epoch, certs, f.Seq))
		}
		v.prev, v.sum.StartGiven = f.Prev, true
		return nil
	}
	switch {
	case f.Prev != Genesis && f.Seq > 1:
		return v.problem(f.Seq, MissingStart, fmt.Sprintf("the log starts at seq %d, not at the genesis record: its oldest files are gone, or it was started elsewhere; %s", f.Seq, say))
	case f.Seq != 1 || f.Prev != Genesis:
		return v.problem(f.Seq, Modified, fmt.Sprintf("the first record is seq %d with prev %s: a log starts at seq 1 with the genesis prev (64 zeros)", f.Seq, short(f.Prev)))
	case v.o.Key != nil && f.Epoch == nil:
		return v.problem(f.Seq, Unsealed, "the log starts with a record that is not sealed: under --key a log must start sealed in epoch 0, since anyone can write plain records (verify a plain log without --key)")
	case v.sign != nil && f.Epoch == nil:
		return v.problem(f.Seq, Unsigned, "the log starts with a record that has no epoch: under --pubkey a log must start signed in epoch 0 (verify a log that is not signed without --pubkey)")
	case v.sign != nil && *f.Epoch != 0:
		return v.problem(f.Seq, LateStart, fmt.Sprintf("the genesis record is in epoch %d, not epoch 0: a signed log starts under epoch 0's key, FILE.pub's, so this one was started with a later key, as whoever holds the daemon's key file can do; %s", *f.Epoch, say))
	case v.o.Key != nil && *f.Epoch != 0:
		return v.problem(f.Seq, LateStart, fmt.Sprintf("the genesis record is sealed in epoch %d, not epoch 0: a log starts in epoch 0, so this one was started with a later key, as whoever holds the daemon's key file can do; %s", *f.Epoch, say))
	}
	return nil
}

// seal checks the record's hash, and for a sealed record its epoch.
func (v *verifier) seal(f chainFields, body []byte, claimed string) error {
	if v.sign != nil {
		return v.signedHash(f, body, claimed)
	}
	if f.Epoch == nil {
		if v.sealed {
			return v.problem(f.Seq, Modified, "an unsealed record in a sealed log: a sealed log never goes back to plain hashes")
		}
		if lineHash(v.plain, body) != claimed {
			return v.problem(f.Seq, Modified, "the line does not match its hash")
		}
		return nil
	}
	if err := v.epochOrder(f, "sealed in"); err != nil {
		return err
	}
	e := *f.Epoch
	v.sum.Sealed = true
	if v.key == nil {
		return nil
	}
	if e < v.keyAt {
		return v.problem(f.Seq, Reordered, fmt.Sprintf("sealed in epoch %d, older than epoch %d already verified: epochs only go up", e, v.keyAt))
	}
	if e-v.keyAt > maxKeySteps {
		return v.problem(f.Seq, Modified, fmt.Sprintf("sealed in epoch %d, %d key steps past epoch %d: verify derives at most %d (each takes an audit.epoch record)", e, e-v.keyAt, v.keyAt, maxKeySteps))
	}
	for v.keyAt < e {
		v.key = NextKey(v.key)
		v.keyAt++
	}
	if lineHash(hmac.New(sha256.New, v.key), body) != claimed {
		if !v.checked {
			return v.problem(f.Seq, BadKey, fmt.Sprintf("the first sealed record (epoch %d) does not verify under this key: wrong key, or the record was changed", e))
		}
		return v.problem(f.Seq, Modified, fmt.Sprintf("the seal does not verify under epoch %d's key: changed, or forged without that key", e))
	}
	v.checked = true
	return nil
}

// epochOrder checks that a record's epoch follows the epochs before it:
// up only, one step at a time, each after its audit.epoch record. how says
// how a record belongs to its epoch: "sealed in", or "in" (signed).
func (v *verifier) epochOrder(f chainFields, how string) error {
	e := *f.Epoch
	switch {
	case !v.sealed:
		v.sum.FirstEpoch = e
	case e < v.epoch:
		return v.problem(f.Seq, Reordered, fmt.Sprintf("%s epoch %d after a record %s epoch %d: epochs only go up", how, e, how, v.epoch))
	case v.ended != nil && e != *v.ended:
		return v.problem(f.Seq, Modified, fmt.Sprintf("%s epoch %d, but the record before it ended epoch %d and named epoch %d as the next: the record after an audit.epoch record is %s the epoch it names", how, e, v.epoch, *v.ended, how))
	case v.ended == nil && e != v.epoch:
		return v.problem(f.Seq, Missing, fmt.Sprintf("epoch %d follows epoch %d without its audit.epoch record: records were removed, or forged with a later key", e, v.epoch))
	}
	if f.NextEpoch != nil && *f.NextEpoch != e+1 {
		return v.problem(f.Seq, Modified, fmt.Sprintf("epoch %d ends with next_epoch %d, but the daemon steps one epoch at a time: it must be %d", e, *f.NextEpoch, e+1))
	}
	v.sealed, v.epoch, v.ended = true, e, f.NextEpoch
	v.sum.LastEpoch = e
	return nil
}
