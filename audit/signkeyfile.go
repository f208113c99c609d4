package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hostpass/hostpass/atomicfile"
)

// Signing keys on disk: FILE (the daemon's current key, 0600) and FILE.pub
// (epoch 0's verifier key, the auditor's).

// StepSignKeyFile steps cur to the next epoch, replaces the key file at path
// with the next key (which carries its certification, so that a crash
// before the certification reaches the log loses nothing), and wipes cur.
// On error cur is kept and the file holds cur's key.
func StepSignKeyFile(path string, cur *SignKey, at CertTree) (next *SignKey, cert []byte, err error) {
	next, cert, err = StepSignKey(cur, at)
	if err != nil {
		return nil, nil, err
	}
	if err := replaceSignKeyFile(path, next); err != nil {
		next.Wipe()
		return nil, nil, err
	}
	cur.Wipe()
	return next, cert, nil
}

// The signing key file: one JSON object,
//
//	{"check":"…","origin":"hostpass/h/…","epoch":N,"seed":"<base64>","cert":"…"}
//
// written by hand into a buffer we own and wipe, so that the seed's
// encoding does not linger in encoding/json's pooled buffers. check is the
// first 8 bytes of SHA-256 over the rest, in hex: a file damaged anywhere
// is refused.
type signKeyFile struct {
	Check  *string `json:"check"`
	Origin *string `json:"origin"`
	Epoch  *uint64 `json:"epoch"`
	Seed   *[]byte `json:"seed"`
	Cert   *string `json:"cert"`
}

func signKeyCheck(origin string, epoch uint64, seed []byte, cert string) string {
	h := sha256.New()
	fmt.Fprintf(h, "hostpass sign key file check v1\x00%s\x00%d\x00", origin, epoch)
	h.Write(seed)
	h.Write([]byte{0})
	h.Write([]byte(cert))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// signKeyFileBytes encodes k; the caller wipes the result.
func signKeyFileBytes(k *SignKey) []byte {
	seed := k.priv.Seed()
	defer wipe(seed)
	origin, _ := json.Marshal(k.origin)
	cert, _ := json.Marshal(string(k.cert))
	b := make([]byte, 0, 256+len(cert))
	b = append(b, `{"check":"`...)
	b = append(b, signKeyCheck(k.origin, k.epoch, seed, string(k.cert))...)
	b = append(b, `","origin":`...)
	b = append(b, origin...)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendUint(b, k.epoch, 10)
	b = append(b, `,"seed":"`...)
	b = base64.StdEncoding.AppendEncode(b, seed)
	b = append(b, `","cert":`...)
	b = append(b, cert...)
	return append(b, "}\n"...)
}

// NewSignKeyFile makes a new log's epoch-0 signing key for host: it writes
// the private key to path (0600, never overwriting a file) and the
// verifier key to path+".pub" (0644), the only thing an auditor needs. It
// returns the verifier key.
func NewSignKeyFile(path, host string) (vkey string, err error) {
	origin, err := NewOrigin(host)
	if err != nil {
		return "", err
	}
	k, err := generateSignKey(origin, 0, nil)
	if err != nil {
		return "", err
	}
	defer k.Wipe()
	if _, err := os.Stat(path + ".pub"); err == nil {
		return "", fmt.Errorf("%s.pub exists: keygen --sign writes a new key pair and overwrites nothing", path)
	}
	b := signKeyFileBytes(k)
	defer wipe(b)
	if err := createExcl(path, b, 0o600); err != nil {
		return "", err
	}
	if err := createExcl(path+".pub", []byte(k.vkey+"\n"), 0o644); err != nil {
		os.Remove(path)
		return "", err
	}
	return k.vkey, nil
}

// createExcl writes a new file (never overwriting one) and fsyncs it.
func createExcl(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// replaceSignKeyFile replaces the key file at path with k atomically (a
// crash leaves the old key or the new, whole), then overwrites the old
// file's bytes with zeros through a descriptor opened before the rename, so
// the old key does not stay in the freed blocks where the file system
// rewrites in place (not on copy-on-write file systems: docs/proof.md).
func replaceSignKeyFile(path string, k *SignKey) error {
	old, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer old.Close()
	b := signKeyFileBytes(k)
	defer wipe(b)
	if err := atomicfile.Write(path, b); err != nil {
		return err
	}
	fi, err := old.Stat()
	if err != nil {
		return err
	}
	if _, err := old.WriteAt(make([]byte, fi.Size()), 0); err != nil {
		return fmt.Errorf("the new key is in place, but the old key file's bytes could not be zeroed: %w", err)
	}
	return old.Sync()
}

// ReadSignKeyFile reads a signing key file, and refuses one that is damaged,
// naming what is wrong. A damaged signing key file cannot be restored:
// nothing off the host can make the current epoch's key (docs/proof.md, "A
// damaged signing key file").
func ReadSignKeyFile(path string) (*SignKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer wipe(b)
	var f signKeyFile
	damaged := func(what string) error {
		return fmt.Errorf("signing key file %s is damaged or not a hostpass signing key file: %s; a signing key file is one JSON object with check, origin, epoch, seed and cert, as `hostpass audit keygen --sign` writes it", path, what)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, damaged(err.Error())
	}
	defer func() {
		if f.Seed != nil {
			wipe(*f.Seed)
		}
	}()
	var missing []string
	for _, m := range []struct {
		name string
		nil  bool
	}{{"check", f.Check == nil}, {"origin", f.Origin == nil}, {"epoch", f.Epoch == nil}, {"seed", f.Seed == nil}, {"cert", f.Cert == nil}} {
		if m.nil {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return nil, damaged(strings.Join(missing, ", ") + " missing")
	}
	origin, epoch, seed, cert := *f.Origin, *f.Epoch, *f.Seed, *f.Cert
	if len(seed) != ed25519.SeedSize {
		return nil, damaged(fmt.Sprintf("its seed is %d bytes, an Ed25519 seed is %d", len(seed), ed25519.SeedSize))
	}
	if *f.Check != signKeyCheck(origin, epoch, seed, cert) {
		return nil, damaged("its check does not match its origin, epoch, seed and cert")
	}
	if !originRE.MatchString(origin) {
		return nil, damaged(fmt.Sprintf("its origin %q is not hostpass/<host>/<16 hex digits>", origin))
	}
	if (epoch == 0) != (cert == "") {
		return nil, damaged(fmt.Sprintf("epoch %d with %d bytes of cert: epoch 0 has no certification, every later epoch has one", epoch, len(cert)))
	}
	k, err := newSignKey(origin, epoch, seed, nil)
	if err != nil {
		return nil, err
	}
	if epoch > 0 {
		if err := k.checkOwnCert([]byte(cert)); err != nil {
			k.Wipe()
			return nil, damaged(err.Error())
		}
		k.cert = []byte(cert)
	}
	// json.Unmarshal matches member names in any case and base64 ignores
	// a seed's padding bits: only the bytes hostpass writes are taken.
	canon := signKeyFileBytes(k)
	defer wipe(canon)
	if !bytes.Equal(canon, b) {
		k.Wipe()
		return nil, damaged("its bytes are not those hostpass writes for its contents (a member name, the order, spacing or an encoding was changed)")
	}
	return k, nil
}

// checkOwnCert checks that cert certifies k (its text, not its signature:
// that needs the previous key, which is gone; the auditor checks it).
func (k *SignKey) checkOwnCert(cert []byte) error {
	origin, epoch, vkey, _, err := readCert(cert)
	if err != nil {
		return fmt.Errorf("its cert %v", err)
	}
	if origin != k.origin || epoch != k.epoch || vkey != k.vkey {
		return fmt.Errorf("its cert certifies %s for epoch %d of %s, not this key %s", vkey, epoch, origin, k.vkey)
	}
	return nil
}

var errPrivateKeyFile = errors.New("verifier key refused: it is the private signing key file, the daemon's, not its verifier key: give FILE.pub, which `hostpass audit keygen --sign FILE` wrote beside it")

// isSignKeyFile says whether text is a signing key file (keygen --sign's
// FILE, a JSON object with the key's seed), given where FILE.pub belongs.
func isSignKeyFile(text []byte) bool {
	var f struct {
		Seed   *[]byte `json:"seed"`
		Origin *string `json:"origin"`
	}
	return json.Unmarshal(text, &f) == nil && f.Seed != nil && f.Origin != nil
}
