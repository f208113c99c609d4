package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The public side of forward-secure signing: epoch key names, key
// certifications and the walk from FILE.pub through them. Like verify, it
// depends on nothing of the writer: an auditor runs it on a laptop.

// originRE is an origin hostpass makes: hostpass/<host>/<16 hex digits of
// log ID>.
var originRE = regexp.MustCompile(`^hostpass/[A-Za-z0-9][A-Za-z0-9._-]{0,62}/[0-9a-f]{16}$`)

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

// certHeader is the first line of a key certification. It keeps a
// certification from ever parsing as a checkpoint (whose first line is an
// origin), though the same key signs both. v1 bound the key only: whoever
// held a later key could rewrite every earlier epoch's records and keep the
// certifications; v2 pins the log's tree as well.
const certHeader = "hostpass key certification v2"

// CertTree is what a key certification pins of the log besides the key:
// the Merkle tree of the records durable when the step started (Size
// records, root Root) and when it started. The key it certifies signs
// nothing before that: records before Size are vouched for by the retiring
// key (it signed this tree), and a record dated before Time by no one.
type CertTree struct {
	Size int64
	Root tlog.Hash
	Time time.Time
}

// certText is the text of the certification of epoch's key vkey, stepped
// when the log's tree was at.
func certText(origin string, epoch uint64, vkey string, at CertTree) string {
	return fmt.Sprintf("%s\norigin %s\nepoch %d\nkey %s\ntree %d %s\ntime %s\n",
		certHeader, origin, epoch, vkey, at.Size, at.Root, at.Time.UTC().Format(time.RFC3339Nano))
}

// readCert reads a certification's text without its signature: the key
// that signed it is the previous epoch's, which the writer no longer holds
// (the auditor checks it, certifiedKey).
func readCert(cert []byte) (origin string, epoch uint64, vkey string, at CertTree, err error) {
	_, err = note.Open(cert, nil)
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return "", 0, "", CertTree{}, fmt.Errorf("is not a signed note (%v)", err)
	}
	origin, epoch, vkey, at, err = parseCertText(unverified.Note.Text)
	if err != nil {
		return "", 0, "", CertTree{}, fmt.Errorf("does not read as a key certification: %w", err)
	}
	return origin, epoch, vkey, at, nil
}

// parseCertText reads a certification's text, unverified.
func parseCertText(text string) (origin string, epoch uint64, vkey string, at CertTree, err error) {
	lines := strings.Split(text, "\n")
	ok := len(lines) == 7 && lines[0] == certHeader && lines[6] == "" &&
		strings.HasPrefix(lines[1], "origin ") && strings.HasPrefix(lines[2], "epoch ") && strings.HasPrefix(lines[3], "key ")
	if ok {
		origin, vkey = lines[1][len("origin "):], lines[3][len("key "):]
		epoch, err = strconv.ParseUint(lines[2][len("epoch "):], 10, 64)
		ok = err == nil
	}
	if ok {
		var size, root, when string
		if _, err := fmt.Sscanf(lines[4], "tree %s %s", &size, &root); err != nil || !strings.HasPrefix(lines[5], "time ") {
			ok = false
		} else {
			when = lines[5][len("time "):]
			var e1, e2, e3 error
			at.Size, e1 = strconv.ParseInt(size, 10, 64)
			at.Root, e2 = tlog.ParseHash(root)
			at.Time, e3 = time.Parse(time.RFC3339Nano, when)
			ok = e1 == nil && e2 == nil && e3 == nil && at.Size >= 0 && certText(origin, epoch, vkey, at) == text
		}
	}
	if !ok {
		return "", 0, "", CertTree{}, fmt.Errorf("its text is not a hostpass key certification: one is the lines %q, \"origin <origin>\", \"epoch <N>\", \"key <verifier key>\", \"tree <records> <root hash, base64>\", \"time <RFC 3339 UTC>\"", certHeader)
	}
	return origin, epoch, vkey, at, nil
}

// ParseSignPub reads a verifier key (FILE.pub's text): one line in note
// verifier format, name+hash+base64. It holds no private key, so nothing
// read from it can sign.
func ParseSignPub(text []byte) (note.Verifier, error) {
	if isSignKeyFile(text) {
		return nil, errPrivateKeyFile
	}
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
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Bounded as a collected note is (maxNoteFile): FILE.pub comes from
	// whoever hands the auditor the evidence.
	b, err := io.ReadAll(io.LimitReader(f, maxNoteFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxNoteFile {
		return nil, fmt.Errorf("%s: verifier key refused: the file is over %d KiB, and a verifier key is one line of about 100 bytes, name+hash+base64, as `hostpass audit keygen --sign FILE` writes to FILE.pub", path, maxNoteFile>>10)
	}
	v, err := ParseSignPub(b)
	if errors.Is(err, errPrivateKeyFile) {
		return nil, fmt.Errorf("%s: verifier key refused: it is the private signing key file, the daemon's, not its verifier key: give %s.pub, which `hostpass audit keygen --sign FILE` wrote beside it (and keep the signing key on the host: whoever holds it can sign)", path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// VerifyKeyChain walks the key certifications from epoch 0's verifier key
// (FILE.pub): certs[i] must certify epoch i+1's key, signed by epoch i's.
// It returns the verifier of every epoch, indexed by epoch.
func VerifyKeyChain(pub note.Verifier, certs [][]byte) ([]note.Verifier, error) {
	chain, _, err := walkKeyChain(pub, certs)
	return chain, err
}

// walkKeyChain is VerifyKeyChain, also returning the tree each
// certification pins, by epoch (epoch 0's is the empty tree). The trees
// must grow: a certification pins the records durable at its step, and
// the next step comes later.
func walkKeyChain(pub note.Verifier, certs [][]byte) ([]note.Verifier, []CertTree, error) {
	origin, epoch, err := splitKeyName(pub.Name())
	if err != nil {
		return nil, nil, err
	}
	if epoch != 0 {
		return nil, nil, fmt.Errorf("key %s is the key of epoch %d: the chain starts from epoch 0's verifier key, FILE.pub", pub.Name(), epoch)
	}
	chain, trees := []note.Verifier{pub}, []CertTree{{}}
	for _, cert := range certs {
		e := uint64(len(chain))
		v, at, err := certifiedKey(chain[e-1], origin, e, cert)
		if err != nil {
			return nil, nil, err
		}
		if prev := trees[e-1]; at.Size < prev.Size {
			return nil, nil, fmt.Errorf("key certification of epoch %d pins a tree of %d records, fewer than epoch %d's certification pins, %d: a log only grows, so one of them pins rewritten history", e, at.Size, e-1, prev.Size)
		}
		chain, trees = append(chain, v), append(trees, at)
	}
	return chain, trees, nil
}

// certifiedKey checks cert, the certification of epoch want's key signed
// by prev (the key of epoch want-1), and returns the key it certifies and
// the tree it pins.
// VerifyKeyChain walks a chain with it; verify takes one step per
// audit.epoch record, as the log goes.
func certifiedKey(prev note.Verifier, origin string, want uint64, cert []byte) (note.Verifier, CertTree, error) {
	n, err := note.Open(cert, note.VerifierList(prev))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		n = unverified.Note
	case errors.As(err, &invalid):
		return nil, CertTree{}, fmt.Errorf("key certification of epoch %d: the signature by %s does not verify: the certification was changed after signing", want, prev.Name())
	case err != nil:
		return nil, CertTree{}, fmt.Errorf("key certification of epoch %d is not a signed note (%v)", want, err)
	}
	cOrigin, cEpoch, vkey, at, err := parseCertText(n.Text)
	if err != nil {
		return nil, CertTree{}, fmt.Errorf("key certification of epoch %d: %v", want, err)
	}
	if cOrigin != origin {
		return nil, CertTree{}, fmt.Errorf("key certification of epoch %d is for log %s, not %s", want, cOrigin, origin)
	}
	if cEpoch != want {
		return nil, CertTree{}, fmt.Errorf("key certification %d certifies epoch %d where epoch %d comes next: a certification is missing, repeated or out of order", want, cEpoch, want)
	}
	if unverified != nil {
		return nil, CertTree{}, fmt.Errorf("key certification of epoch %d is not signed by %s, the key of epoch %d, but by %s: it is forged, or belongs to another chain", want, prev.Name(), want-1, sigNames(unverified.Note.UnverifiedSigs))
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, CertTree{}, fmt.Errorf("key certification of epoch %d: its key %q is not a verifier key (%v)", want, vkey, err)
	}
	if v.Name() != epochKeyName(origin, want) {
		return nil, CertTree{}, fmt.Errorf("key certification of epoch %d names key %s, not %s", want, v.Name(), epochKeyName(origin, want))
	}
	return v, at, nil
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
