package audit

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// KeyFile is a sealing key on disk. The daemon's copy holds the current
// epoch's key and is overwritten as the key evolves; the initial copy
// (epoch 0), kept off the host, is what `hostpass audit verify --key` takes.
//
// Check makes the file self-checking: the daemon overwrites the file in
// place (so that no older key survives in a renamed-away file), and a crash
// or a full disk can leave a mix of the old and the new content. Check
// comes first, so that any mix that still parses carries a check, and a
// mix's check does not match its epoch and key.
type KeyFile struct {
	Check string `json:"check,omitempty"`
	Epoch uint64 `json:"epoch"`
	Key   string `json:"key"`
}

// keyCheck is the check of a key file: the first 8 bytes of
// SHA-256(label || epoch || ":" || key hex), in hex.
func keyCheck(epoch uint64, keyHex string) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("hostpass key file check v1\x00%d:%s", epoch, keyHex)))
	return hex.EncodeToString(sum[:8])
}

func keyFileBytes(epoch uint64, key []byte) []byte {
	k := hex.EncodeToString(key)
	b, _ := json.Marshal(KeyFile{Check: keyCheck(epoch, k), Epoch: epoch, Key: k})
	return append(b, '\n')
}

// NewKeyFile writes a fresh random epoch-0 key to path, which must not exist.
func NewKeyFile(path string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	defer wipe(key)
	return createKeyFile(path, 0, key)
}

// StepKeyFile writes to path, which must not exist, the key of epoch,
// stepped forward from the initial (epoch 0) key file at initial. The daemon
// takes a key file at most one epoch behind its log; this is how an
// operator restores a damaged key file for a log further on. The result is
// the key whoever holds it can seal epoch and later with: install it on the
// host only, and wipe any other copy.
func StepKeyFile(initial, path string, epoch uint64) error {
	e, key, err := ReadKeyFile(initial)
	if err != nil {
		return err
	}
	defer func() { wipe(key) }()
	if e != 0 {
		return fmt.Errorf("%s holds the key of epoch %d; a key is stepped from the initial key (epoch 0)", initial, e)
	}
	if epoch > maxKeySteps {
		return fmt.Errorf("epoch %d is more than %d key steps from the initial key; the daemon steps once per audit.epoch record, so no real log gets there", epoch, maxKeySteps)
	}
	for i := uint64(0); i < epoch; i++ {
		next := NextKey(key)
		wipe(key)
		key = next
	}
	return createKeyFile(path, epoch, key)
}

// createKeyFile writes a new key file at path (never overwriting one) and
// fsyncs it.
func createKeyFile(path string, epoch uint64, key []byte) error {
	return createExcl(path, keyFileBytes(epoch, key), 0o600)
}

// ReadKeyFile reads a key file, and refuses one whose check does not match.
// A file without a check was written by hostpass 1 to 3. It decodes
// strictly (no unknown member, epoch and key present, nothing after the
// object): the first overwrite of such a file, torn, can otherwise read as
// `{"c` + `poch":5,"key":…}`, an unknown member and the old key taken for
// epoch 0.
func ReadKeyFile(path string) (epoch uint64, key []byte, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	const restore = "if it is the daemon's copy, restore it from the initial key (docs/audit.md, \"A damaged key file\")"
	var kf struct {
		Check *string `json:"check"`
		Epoch *uint64 `json:"epoch"`
		Key   *string `json:"key"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err = dec.Decode(&kf)
	if err == nil {
		if _, end := dec.Token(); end != io.EOF {
			err = errors.New("more follows the key object")
		}
	}
	if err == nil && (kf.Epoch == nil || kf.Key == nil) {
		err = errors.New("epoch or key is missing")
	}
	if err != nil {
		return 0, nil, fmt.Errorf("key file %s is damaged or not a hostpass key file (%v): a hostpass key file is one JSON object with check, epoch and key, and nothing else; %s", path, err, restore)
	}
	key, err = hex.DecodeString(*kf.Key)
	if err != nil || len(key) != 32 {
		return 0, nil, fmt.Errorf("key file %s is damaged: its key must be 64 hex digits; %s", path, restore)
	}
	if kf.Check != nil && *kf.Check != keyCheck(*kf.Epoch, *kf.Key) {
		return 0, nil, fmt.Errorf("key file %s is damaged: its check does not match its epoch and key, as when a crash or a full disk tears the daemon's overwrite; hostpass will not use it; %s", path, restore)
	}
	return *kf.Epoch, key, nil
}

// overwriteKeyFile replaces the key in place (same file, same blocks where
// the file system allows) and fsyncs, so the old key does not stay behind in
// a renamed-away file.
func overwriteKeyFile(path string, epoch uint64, key []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := keyFileBytes(epoch, key)
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	if err := f.Truncate(int64(len(b))); err != nil {
		return err
	}
	return f.Sync()
}

// wipe zeroes a key in memory.
func wipe(key []byte) {
	for i := range key {
		key[i] = 0
	}
}
