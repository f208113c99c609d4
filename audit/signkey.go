package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/hostpass/hostpass/atomicfile"
)

// Forward-secure signing (docs/proof.md): each epoch has its own Ed25519
// key pair, named <origin>/e<N>. Epoch 0's is made by `hostpass audit keygen
// --sign FILE`; every later one is made by the daemon and certified by the
// key of the epoch before (a signed note in the log), after which the older
// private key is wiped from the key file and from memory. An auditor holds
// only epoch 0's verifier key (FILE.pub) and walks the certifications.

// SignKey is one epoch's signing key. It is a note.Signer; unlike the one
// note.NewSigner returns, its private key bytes are ours, so Wipe can zero
// them. One goroutine owns a SignKey (the committer): Sign and Wipe are not
// meant to race.
type SignKey struct {
	origin string
	epoch  uint64
	priv   ed25519.PrivateKey
	name   string
	hash   uint32
	vkey   string // the verifier key, in note format name+hash+base64
	cert   []byte // this key's certification by the previous epoch's key; nil in epoch 0
}

// Name is the key's name: the log's origin and the epoch, <origin>/e<N>.
func (k *SignKey) Name() string { return k.name }

// KeyHash is the note key hash of the key's name and public key.
func (k *SignKey) KeyHash() uint32 { return k.hash }

// Epoch is the epoch this key signs for.
func (k *SignKey) Epoch() uint64 { return k.epoch }

// Origin is the origin of the log this key signs for.
func (k *SignKey) Origin() string { return k.origin }

// VerifierKey is the public half in note verifier format.
func (k *SignKey) VerifierKey() string { return k.vkey }

// Cert is this key's certification by the previous epoch's key (nil for
// epoch 0): it goes into the log before anything this key signs.
func (k *SignKey) Cert() []byte { return k.cert }

// Sign signs msg with Ed25519; a wiped key refuses.
func (k *SignKey) Sign(msg []byte) ([]byte, error) {
	if k.priv == nil {
		return nil, fmt.Errorf("signing key %s was wiped: its epoch has ended", k.name)
	}
	return ed25519.Sign(k.priv, msg), nil
}

// Wipe zeroes the private key in memory; the key cannot sign afterwards.
func (k *SignKey) Wipe() {
	wipe(k.priv)
	k.priv = nil
}

// hostRE is what a host identity may hold: a hostname's characters, so that
// origins and key names stay one note-safe word.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// originRE is an origin hostpass makes: hostpass/<host>/<16 hex digits of
// log ID>.
var originRE = regexp.MustCompile(`^hostpass/[A-Za-z0-9][A-Za-z0-9._-]{0,62}/[0-9a-f]{16}$`)

// NewOrigin makes a new log's origin, hostpass/<host>/<log ID>: the host's
// name, for people, and a random 64-bit log ID, so that two hosts with one
// name (cloned images, "localhost", a reinstall) never share an origin and
// checkpoints of one log can never be taken for another's.
func NewOrigin(host string) (string, error) {
	if !hostRE.MatchString(host) {
		return "", fmt.Errorf("host name %q refused: a host identity is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", host)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	return "hostpass/" + host + "/" + hex.EncodeToString(id), nil
}

// epochKeyName is the key name of an epoch: <origin>/e<N>. Names differ per
// epoch because note tells keys apart by name and a 32-bit hash, and 32 bits
// collide among tens of thousands of epochs of one name.
func epochKeyName(origin string, epoch uint64) string {
	return origin + "/e" + strconv.FormatUint(epoch, 10)
}

// splitKeyName is epochKeyName's inverse.
func splitKeyName(name string) (origin string, epoch uint64, err error) {
	i := strings.LastIndex(name, "/e")
	if i >= 0 {
		origin = name[:i]
		epoch, err = strconv.ParseUint(name[i+2:], 10, 64)
	}
	if i < 0 || err != nil || !originRE.MatchString(origin) || epochKeyName(origin, epoch) != name {
		return "", 0, fmt.Errorf("key name %q is not a hostpass epoch key name: one is hostpass/<host>/<16 hex digits>/e<epoch>", name)
	}
	return origin, epoch, nil
}

// newSignKey makes the key of epoch from a 32-byte seed.
func newSignKey(origin string, epoch uint64, seed []byte, cert []byte) (*SignKey, error) {
	priv := ed25519.NewKeyFromSeed(seed)
	name := epochKeyName(origin, epoch)
	vkey, err := note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		wipe(priv)
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		wipe(priv)
		return nil, err
	}
	return &SignKey{origin: origin, epoch: epoch, priv: priv, name: name, hash: v.KeyHash(), vkey: vkey, cert: cert}, nil
}

// generateSignKey makes a fresh random key for epoch.
func generateSignKey(origin string, epoch uint64, cert func(vkey string) ([]byte, error)) (*SignKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	defer wipe(seed)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	k, err := newSignKey(origin, epoch, seed, nil)
	if err != nil || cert == nil {
		return k, err
	}
	if k.cert, err = cert(k.vkey); err != nil {
		k.Wipe()
		return nil, err
	}
	return k, nil
}

// certHeader is the first line of a key certification. It keeps a
// certification from ever parsing as a checkpoint (whose first line is an
// origin), though the same key signs both.
const certHeader = "hostpass key certification v1"

// certText is the text of the certification of epoch's key vkey.
func certText(origin string, epoch uint64, vkey string) string {
	return fmt.Sprintf("%s\norigin %s\nepoch %d\nkey %s\n", certHeader, origin, epoch, vkey)
}

// parseCertText reads a certification's text, unverified.
func parseCertText(text string) (origin string, epoch uint64, vkey string, err error) {
	lines := strings.Split(text, "\n")
	ok := len(lines) == 5 && lines[0] == certHeader && lines[4] == "" &&
		strings.HasPrefix(lines[1], "origin ") && strings.HasPrefix(lines[2], "epoch ") && strings.HasPrefix(lines[3], "key ")
	if ok {
		origin, vkey = lines[1][len("origin "):], lines[3][len("key "):]
		epoch, err = strconv.ParseUint(lines[2][len("epoch "):], 10, 64)
		ok = err == nil && certText(origin, epoch, vkey) == text
	}
	if !ok {
		return "", 0, "", fmt.Errorf("its text is not a hostpass key certification: one is the lines %q, \"origin <origin>\", \"epoch <N>\", \"key <verifier key>\"", certHeader)
	}
	return origin, epoch, vkey, nil
}

// StepSignKey makes the next epoch's key and its certification, signed by
// cur: the note naming origin, next epoch and next public key. cur is left
// as it is: the caller writes the next key (StepSignKeyFile) and the
// certification, then wipes cur (docs/proof.md, "Stepping an epoch").
func StepSignKey(cur *SignKey) (next *SignKey, cert []byte, err error) {
	if cur.priv == nil {
		return nil, nil, fmt.Errorf("signing key %s was wiped: a wiped key certifies nothing", cur.name)
	}
	epoch := cur.epoch + 1
	next, err = generateSignKey(cur.origin, epoch, func(vkey string) ([]byte, error) {
		return note.Sign(&note.Note{Text: certText(cur.origin, epoch, vkey)}, cur)
	})
	if err != nil {
		return nil, nil, err
	}
	return next, next.cert, nil
}

// StepSignKeyFile steps cur to the next epoch, replaces the key file at path
// with the next key (which carries its certification, so that a crash
// before the certification reaches the log loses nothing), and wipes cur.
// On error cur is kept and the file holds cur's key.
func StepSignKeyFile(path string, cur *SignKey) (next *SignKey, cert []byte, err error) {
	next, cert, err = StepSignKey(cur)
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
	n, err := note.Open(cert, nil)
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return fmt.Errorf("its cert is not a signed note: %v", err)
	}
	n = unverified.Note
	origin, epoch, vkey, err := parseCertText(n.Text)
	if err != nil {
		return fmt.Errorf("its cert: %v", err)
	}
	if origin != k.origin || epoch != k.epoch || vkey != k.vkey {
		return fmt.Errorf("its cert certifies %s for epoch %d of %s, not this key %s", vkey, epoch, origin, k.vkey)
	}
	return nil
}

// ParseSignPub reads a verifier key (FILE.pub's text): one line in note
// verifier format, name+hash+base64. It holds no private key, so nothing
// read from it can sign.
func ParseSignPub(text []byte) (note.Verifier, error) {
	line := strings.TrimSuffix(string(text), "\n")
	if strings.Contains(line, "\n") || strings.HasPrefix(line, "PRIVATE+KEY+") {
		return nil, errors.New("verifier key refused: a verifier key file holds one line, name+hash+base64, as `hostpass audit keygen --sign FILE` writes to FILE.pub, and never a private key")
	}
	v, err := note.NewVerifier(line)
	if err != nil {
		return nil, fmt.Errorf("verifier key refused (%v): one is name+hash+base64, as `hostpass audit keygen --sign FILE` writes to FILE.pub", err)
	}
	if _, _, err := splitKeyName(v.Name()); err != nil {
		return nil, fmt.Errorf("verifier key refused: %w", err)
	}
	return v, nil
}

// ReadSignPub reads a verifier key file (FILE.pub).
func ReadSignPub(path string) (note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v, err := ParseSignPub(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// VerifyKeyChain walks the key certifications from epoch 0's verifier key
// (FILE.pub): certs[i] must certify epoch i+1's key, signed by epoch i's.
// It returns the verifier of every epoch, indexed by epoch.
func VerifyKeyChain(pub note.Verifier, certs [][]byte) ([]note.Verifier, error) {
	origin, epoch, err := splitKeyName(pub.Name())
	if err != nil {
		return nil, err
	}
	if epoch != 0 {
		return nil, fmt.Errorf("key %s is the key of epoch %d: the chain starts from epoch 0's verifier key, FILE.pub", pub.Name(), epoch)
	}
	chain := []note.Verifier{pub}
	for i, cert := range certs {
		prev := chain[i]
		want := uint64(i) + 1
		n, err := note.Open(cert, note.VerifierList(prev))
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			n = unverified.Note
		case errors.As(err, &invalid):
			return nil, fmt.Errorf("key certification of epoch %d: the signature by %s does not verify: the certification was changed after signing", want, prev.Name())
		case err != nil:
			return nil, fmt.Errorf("key certification of epoch %d is not a signed note (%v)", want, err)
		}
		cOrigin, cEpoch, vkey, err := parseCertText(n.Text)
		if err != nil {
			return nil, fmt.Errorf("key certification of epoch %d: %v", want, err)
		}
		if cOrigin != origin {
			return nil, fmt.Errorf("key certification of epoch %d is for log %s, not %s", want, cOrigin, origin)
		}
		if cEpoch != want {
			return nil, fmt.Errorf("key certification %d certifies epoch %d where epoch %d comes next: a certification is missing, repeated or out of order", i+1, cEpoch, want)
		}
		if unverified != nil {
			return nil, fmt.Errorf("key certification of epoch %d is not signed by %s, the key of epoch %d, but by %s: it is forged, or belongs to another chain", want, prev.Name(), i, sigNames(unverified.Note.UnverifiedSigs))
		}
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, fmt.Errorf("key certification of epoch %d: its key %q is not a verifier key (%v)", want, vkey, err)
		}
		if v.Name() != epochKeyName(origin, want) {
			return nil, fmt.Errorf("key certification of epoch %d names key %s, not %s", want, v.Name(), epochKeyName(origin, want))
		}
		chain = append(chain, v)
	}
	return chain, nil
}

// sigNames lists the keys that signed a note, as name+hash.
func sigNames(sigs []note.Signature) string {
	var b bytes.Buffer
	for i, s := range sigs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s+%08x", s.Name, s.Hash)
	}
	if b.Len() == 0 {
		return "no key"
	}
	return b.String()
}
