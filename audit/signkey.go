package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"

	"golang.org/x/mod/sumdb/note"
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

// copyKey is a copy of k, private key and all, that can be wiped apart
// from k: the committer steps the key file with a copy while it keeps k
// to sign the epoch's last checkpoint (checkpointing.go).
func (k *SignKey) copyKey() *SignKey {
	c := *k
	c.priv = append(ed25519.PrivateKey(nil), k.priv...)
	return &c
}

// hostRE is what a host identity may hold: a hostname's characters, so that
// origins and key names stay one note-safe word.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

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

// StepSignKey makes the next epoch's key and its certification, signed by
// cur: the note naming origin, next epoch and next public key, and at, the
// log's tree when the step started (records durable then, their root, the
// time): so the new key's holder cannot rewrite what cur signed. cur is left
// as it is: the caller writes the next key (StepSignKeyFile) and the
// certification, then wipes cur (docs/proof.md, "Stepping an epoch").
func StepSignKey(cur *SignKey, at CertTree) (next *SignKey, cert []byte, err error) {
	if cur.priv == nil {
		return nil, nil, fmt.Errorf("signing key %s was wiped: a wiped key certifies nothing", cur.name)
	}
	epoch := cur.epoch + 1
	next, err = generateSignKey(cur.origin, epoch, func(vkey string) ([]byte, error) {
		return note.Sign(&note.Note{Text: certText(cur.origin, epoch, vkey, at)}, cur)
	})
	if err != nil {
		return nil, nil, err
	}
	return next, next.cert, nil
}
