package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// newChain makes an epoch-0 key file in a temporary directory and steps it
// to epoch last, returning the key file's path, FILE.pub's verifier, the
// current key and the certifications in order.
// testAt is the tree a key step pins in tests that look at keys only.
var testAt = CertTree{Time: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}

func newChain(t *testing.T, last int) (path string, pub note.Verifier, k *SignKey, certs [][]byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "sign.key")
	if _, err := NewSignKeyFile(path, "web-1"); err != nil {
		t.Fatal(err)
	}
	pub, err := ReadSignPub(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if k, err = ReadSignKeyFile(path); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < last; i++ {
		next, cert, err := StepSignKeyFile(path, k, testAt)
		if err != nil {
			t.Fatal(err)
		}
		k, certs = next, append(certs, cert)
	}
	return path, pub, k, certs
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
}

// TestKeyChainFromPubAlone walks epoch 0's FILE.pub through two
// certifications, and a checkpoint signed in epoch 2 opens with the chain.
func TestKeyChainFromPubAlone(t *testing.T) {
	path, pub, k2, certs := newChain(t, 2)
	chain, err := VerifyKeyChain(pub, certs)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 3 {
		t.Fatalf("chain of %d verifiers, want 3 (epochs 0, 1, 2)", len(chain))
	}
	for e, v := range chain {
		if want := fmt.Sprintf("%s/e%d", k2.Origin(), e); v.Name() != want {
			t.Errorf("epoch %d's verifier is %s, want %s", e, v.Name(), want)
		}
	}
	root := testRoot(7)
	cp, err := SignCheckpoint(k2, k2.Origin(), 41, root)
	if err != nil {
		t.Fatal(err)
	}
	size, got, err := OpenCheckpoint(cp, note.VerifierList(chain...), k2.Origin())
	if err != nil || size != 41 || got != root {
		t.Fatalf("OpenCheckpoint = %d, %v, %v; want 41, %v", size, got, err, root)
	}
	// The key file read back is the same key, carrying its certification.
	r, err := ReadSignKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Epoch() != 2 || r.VerifierKey() != k2.VerifierKey() || !bytes.Equal(r.Cert(), certs[1]) {
		t.Fatalf("key file reads as epoch %d key %s, want epoch 2 key %s with its certification", r.Epoch(), r.VerifierKey(), k2.VerifierKey())
	}
	// Epoch 1's key cannot open what only epoch 2 signed.
	_, _, err = OpenCheckpoint(cp, note.VerifierList(chain[:2]...), k2.Origin())
	wantErr(t, err, fmt.Sprintf("checkpoint refused: it is signed by %s+%08x, no key of this log's chain", k2.Name(), k2.KeyHash()))
}

// TestKeyChainRefuses: a forged certification, a skipped epoch, a
// certification for another log and an edited one each fail, naming why.
func TestKeyChainRefuses(t *testing.T) {
	_, pub, k3, certs := newChain(t, 3)
	origin := k3.Origin()

	// A forger's key with epoch 0's name, not the one in FILE.pub.
	forger, err := generateSignKey(origin, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := note.Sign(&note.Note{Text: certText(origin, 1, k3.VerifierKey(), testAt)}, forger)
	if err != nil {
		t.Fatal(err)
	}
	// Another log's chain: its certification is well signed, for itself.
	_, _, _, otherCerts := newChain(t, 1)
	edited := bytes.Replace(certs[0], []byte("epoch 1\n"), []byte("epoch 1 \n"), 1)

	for _, tc := range []struct {
		name  string
		certs [][]byte
		want  string
	}{
		{"forged", [][]byte{forged}, fmt.Sprintf("key certification of epoch 1 is not signed by %s/e0, the key of epoch 0, but by %s/e0+%08x: it is forged, or belongs to another chain", origin, origin, forger.KeyHash())},
		{"skipped", [][]byte{certs[0], certs[2]}, "key certification 2 certifies epoch 3 where epoch 2 comes next: a certification is missing, repeated or out of order"},
		{"repeated", [][]byte{certs[0], certs[0]}, "key certification 2 certifies epoch 1 where epoch 2 comes next: a certification is missing, repeated or out of order"},
		{"other log", [][]byte{otherCerts[0]}, fmt.Sprintf("key certification of epoch 1 is for log %s, not %s", mustParseCertOrigin(t, otherCerts[0]), origin)},
		{"edited", [][]byte{edited}, fmt.Sprintf("key certification of epoch 1: the signature by %s/e0 does not verify: the certification was changed after signing", origin)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyKeyChain(pub, tc.certs)
			wantErr(t, err, tc.want)
		})
	}
}

// TestKeyChainRefusesChangedSignedCert: a certification whose key line was
// swapped for another key's, signature kept, fails on the signature.
func TestKeyChainRefusesChangedSignedCert(t *testing.T) {
	_, pub, _, certs := newChain(t, 1)
	_, err := note.Open(certs[0], nil)
	un := err.(*note.UnverifiedNoteError)
	origin, _, _, _, _ := parseCertText(un.Note.Text)
	thief, err := generateSignKey(origin, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := certText(origin, 1, thief.VerifierKey(), testAt)
	sig := certs[0][len(un.Note.Text):]
	_, err = VerifyKeyChain(pub, [][]byte{append([]byte(text), sig...)})
	wantErr(t, err, fmt.Sprintf("key certification of epoch 1: the signature by %s/e0 does not verify: the certification was changed after signing", origin))
}

func mustParseCertOrigin(t *testing.T, cert []byte) string {
	t.Helper()
	_, err := note.Open(cert, nil)
	origin, _, _, _, perr := parseCertText(err.(*note.UnverifiedNoteError).Note.Text)
	if perr != nil {
		t.Fatal(perr)
	}
	return origin
}

// TestSignPubHoldsNoSigner: FILE.pub parses as a verifier and never as a
// signer, and holds the seed in no encoding; FILE is 0600.
func TestSignPubHoldsNoSigner(t *testing.T) {
	path, _, k, _ := newChain(t, 0)
	pubText, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if string(pubText) != k.VerifierKey()+"\n" {
		t.Fatalf("FILE.pub holds %q, want the verifier key %q", pubText, k.VerifierKey())
	}
	if _, err := note.NewSigner(strings.TrimSpace(string(pubText))); err == nil {
		t.Fatal("FILE.pub parses as a note signer key")
	}
	if _, err := ParseSignPub(pubText); err != nil {
		t.Fatal(err)
	}
	seed := k.priv.Seed()
	for _, enc := range []string{base64.StdEncoding.EncodeToString(seed), base64.RawStdEncoding.EncodeToString(seed), hex.EncodeToString(seed), string(seed)} {
		if bytes.Contains(pubText, []byte(enc)) {
			t.Fatalf("FILE.pub holds the seed: %q", pubText)
		}
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{path, 0o600}, {path + ".pub", 0o644}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("%s has mode %v, want %v", f.path, fi.Mode().Perm(), f.mode)
		}
	}
	// A private key in the .pub file is refused, not used.
	skey, _, err := note.GenerateKey(nil, "x")
	if err == nil {
		_, err = ParseSignPub([]byte(skey + "\n"))
		wantErr(t, err, "verifier key refused: a verifier key file holds one line, name+hash+base64, as `hostpass audit keygen --sign FILE` writes to FILE.pub, and never a private key")
	}
	// keygen overwrites nothing.
	if _, err := NewSignKeyFile(path, "web-1"); err == nil {
		t.Fatal("NewSignKeyFile overwrote an existing key file")
	}
}

// TestStepWipesOldKey: after a step the old private key is in neither the
// key file nor the old file's blocks (seen through a hard link to the old
// inode), and its bytes in memory are zero.
func TestStepWipesOldKey(t *testing.T) {
	path, _, k0, _ := newChain(t, 0)
	oldPriv := k0.priv
	oldSeed := append([]byte(nil), k0.priv.Seed()...)
	link := path + ".old-inode"
	if err := os.Link(path, link); err != nil {
		t.Fatal(err)
	}
	oldLen := fileSize(t, link)
	k1, _, err := StepSignKeyFile(path, k0, testAt)
	if err != nil {
		t.Fatal(err)
	}
	now, _ := os.ReadFile(path)
	if bytes.Contains(now, []byte(base64.StdEncoding.EncodeToString(oldSeed))) {
		t.Fatal("the key file still holds epoch 0's seed after the step")
	}
	if k, err := ReadSignKeyFile(path); err != nil || k.Epoch() != 1 || k.VerifierKey() != k1.VerifierKey() {
		t.Fatalf("key file after the step reads as %v, %v; want epoch 1's key", k, err)
	}
	old, _ := os.ReadFile(link)
	if int64(len(old)) != oldLen || !bytes.Equal(old, make([]byte, oldLen)) {
		t.Fatalf("the old key file's bytes were not zeroed: %q", old)
	}
	if !bytes.Equal(oldPriv, make([]byte, ed25519.PrivateKeySize)) {
		t.Fatal("epoch 0's private key bytes are not zero in memory after the step")
	}
	_, err = k0.Sign([]byte("x"))
	wantErr(t, err, fmt.Sprintf("signing key %s was wiped: its epoch has ended", k0.Name()))
	_, _, err = StepSignKey(k0, testAt)
	wantErr(t, err, fmt.Sprintf("signing key %s was wiped: a wiped key certifies nothing", k0.Name()))
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestReadSignKeyFileRefusesDamage: every damaged key file is refused with
// a text naming what is wrong.
func TestReadSignKeyFileRefusesDamage(t *testing.T) {
	path, _, k1, _ := newChain(t, 1)
	good, _ := os.ReadFile(path)
	seed := k1.priv.Seed()
	cert := string(k1.Cert())
	// rewrite builds a key file with a matching check from parts.
	rewrite := func(epoch uint64, seed []byte, cert string) []byte {
		k, err := newSignKey(k1.Origin(), epoch, seed, []byte(cert))
		if err != nil {
			t.Fatal(err)
		}
		return signKeyFileBytes(k)
	}
	seedB64 := base64.StdEncoding.EncodeToString(seed)
	// Another base64 letter at one place: flipping a bit of the text could
	// give a character base64 does not have ('A' ^ 1 is '@'), a different
	// refusal, in about 2 runs of 30 with a random seed.
	flipped := []byte(seedB64)
	flipped[3] = map[bool]byte{true: 'B', false: 'A'}[flipped[3] == 'A']
	prefix := "signing key file " + path + " is damaged or not a hostpass signing key file: "
	suffix := "; a signing key file is one JSON object with check, origin, epoch, seed and cert, as `hostpass audit keygen --sign` writes it"
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"seed bit", bytes.Replace(good, []byte(seedB64), flipped, 1), "its check does not match its origin, epoch, seed and cert"},
		{"epoch", bytes.Replace(good, []byte(`"epoch":1`), []byte(`"epoch":2`), 1), "its check does not match its origin, epoch, seed and cert"},
		{"truncated", good[:len(good)/2], "unexpected end of JSON input"},
		{"trailing", append(append([]byte(nil), good...), "{}"...), "invalid character '{' after top-level value"},
		{"no cert", bytes.Replace(good, []byte(`,"cert":`), []byte(`,"cerx":`), 1), "cert missing"},
		{"short seed", bytes.Replace(good, []byte(seedB64), []byte(base64.StdEncoding.EncodeToString(seed[:16])), 1), "its seed is 16 bytes, an Ed25519 seed is 32"},
		{"epoch 0 with cert", rewrite(0, seed, cert), "epoch 0 with " + fmt.Sprint(len(cert)) + " bytes of cert: epoch 0 has no certification, every later epoch has one"},
		{"epoch 1 without cert", rewrite(1, seed, ""), "epoch 1 with 0 bytes of cert: epoch 0 has no certification, every later epoch has one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.file, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadSignKeyFile(path)
			wantErr(t, err, prefix+tc.want+suffix)
		})
	}
	// A certification of another key than the file's, check matching.
	other, otherCert, err := StepSignKey(mustKey(t, k1), testAt)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, rewrite(2, seed, string(otherCert)), 0o600)
	mine, _ := newSignKey(k1.Origin(), 2, seed, nil)
	_, err = ReadSignKeyFile(path)
	wantErr(t, err, prefix+fmt.Sprintf("its cert certifies %s for epoch 2 of %s, not this key %s", other.VerifierKey(), k1.Origin(), mine.VerifierKey())+suffix)
}

// mustKey copies k (its private key too), so that a test can step it
// without wiping the original.
func mustKey(t *testing.T, k *SignKey) *SignKey {
	t.Helper()
	c, err := newSignKey(k.origin, k.epoch, k.priv.Seed(), k.cert)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNewOriginRefusesBadHost: a host identity is a hostname's characters.
func TestNewOriginRefusesBadHost(t *testing.T) {
	for _, h := range []string{"", "a b", "a+b", "a/b", "-x", strings.Repeat("a", 64)} {
		_, err := NewOrigin(h)
		wantErr(t, err, fmt.Sprintf("host name %q refused: a host identity is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", h))
	}
	a, _ := NewOrigin("localhost")
	b, _ := NewOrigin("localhost")
	if a == b || !originRE.MatchString(a) {
		t.Fatalf("two origins for one host name: %q, %q; want two distinct hostpass/localhost/<log ID>", a, b)
	}
}

// BenchmarkStepSignKeyFile is what ending a signing epoch costs the daemon:
// a new key pair, its certification, the key file replaced (two fsyncs and
// a rename) and the old file's bytes zeroed (one more fsync).
func BenchmarkStepSignKeyFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "sign.key")
	if _, err := NewSignKeyFile(path, "bench"); err != nil {
		b.Fatal(err)
	}
	k, err := ReadSignKeyFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if k, _, err = StepSignKeyFile(path, k, testAt); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDamagedSignKeyFileIsNeverUsed: a key file cut at any byte, or with
// any one bit of any byte flipped, is refused; none reads as a key.
func TestDamagedSignKeyFileIsNeverUsed(t *testing.T) {
	path, _, _, _ := newChain(t, 1)
	good, _ := os.ReadFile(path)
	var damaged [][]byte
	for i := range good {
		damaged = append(damaged, good[:i])
		for bit := 0; bit < 8; bit++ {
			b := append([]byte(nil), good...)
			b[i] ^= 1 << bit
			damaged = append(damaged, b)
		}
	}
	for _, b := range damaged {
		os.WriteFile(path, b, 0o600)
		if k, err := ReadSignKeyFile(path); err == nil {
			t.Fatalf("damaged key file read as the key of epoch %d: %q", k.Epoch(), b)
		} else if !strings.HasPrefix(err.Error(), "signing key file "+path+" is damaged") {
			t.Fatalf("damaged key file refused with %q, want the damaged-file text", err)
		}
	}
}

// TestParseSignPubRefusesOtherKeys: a verifier key whose name is not a
// hostpass epoch key's is refused.
func TestParseSignPubRefusesOtherKeys(t *testing.T) {
	_, vkey, err := note.GenerateKey(nil, "sum.golang.org")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseSignPub([]byte(vkey + "\n"))
	wantErr(t, err, `verifier key refused: key name "sum.golang.org" is not a hostpass epoch key name: one is hostpass/<host>/<16 hex digits>/e<epoch>`)
}

// A FILE.pub far past any verifier key's size is refused by its size,
// without reading it whole (it comes with the evidence, from anyone).
func TestReadSignPubRefusesAHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.pub")
	if err := os.WriteFile(path, bytes.Repeat([]byte("a"), 10<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadSignPub(path)
	wantErr(t, err, path+": verifier key refused: the file is over 64 KiB, and a verifier key is one line of about 100 bytes, name+hash+base64, as `hostpass audit keygen --sign FILE` writes to FILE.pub")
}
