package audit

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testRoot is a stand-in root hash; proof.go's tree gives the real one.
func testRoot(i int) tlog.Hash {
	return tlog.Hash(sha256.Sum256([]byte(fmt.Sprint("root ", i))))
}

// TestCheckpointRoundTrip: a checkpoint is the C2SP text (origin, size,
// base64 root), a blank line and one signature line by the epoch's key, and
// opens with FILE.pub to the same size and root.
func TestCheckpointRoundTrip(t *testing.T) {
	_, pub, k, _ := newChain(t, 0)
	root := testRoot(1)
	cp, err := SignCheckpoint(k, k.Origin(), 1000, root)
	if err != nil {
		t.Fatal(err)
	}
	text, sig, _ := strings.Cut(string(cp), "\n\n")
	if want := fmt.Sprintf("%s\n1000\n%s", k.Origin(), root); text != want {
		t.Fatalf("checkpoint text\n%s\nwant\n%s", text, want)
	}
	if !strings.HasPrefix(sig, "— "+k.Name()+" ") || strings.Count(sig, "\n") != 1 {
		t.Fatalf("signature block %q, want one line by %s", sig, k.Name())
	}
	size, got, err := OpenCheckpoint(cp, note.VerifierList(pub), k.Origin())
	if err != nil || size != 1000 || got != root {
		t.Fatalf("OpenCheckpoint = %d, %v, %v; want 1000, %v", size, got, err, root)
	}
	// An empty tree is a checkpoint too (a log at genesis).
	cp0, _ := SignCheckpoint(k, k.Origin(), 0, tlog.Hash{})
	if size, _, err := OpenCheckpoint(cp0, note.VerifierList(pub), k.Origin()); err != nil || size != 0 {
		t.Fatalf("empty tree: %d, %v", size, err)
	}
}

// TestCheckpointRefuses: an edited size or root, another log's origin, an
// unknown key and a malformed body each fail, naming why.
func TestCheckpointRefuses(t *testing.T) {
	_, pub, k, _ := newChain(t, 0)
	origin := k.Origin()
	root := testRoot(2)
	cp, err := SignCheckpoint(k, origin, 1000, root)
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := generateSignKey(origin, 0, nil)
	byStranger, _ := SignCheckpoint(stranger, origin, 1000, root)
	otherRoot := testRoot(3)
	badSig := fmt.Sprintf("checkpoint refused: the signature by %s+%08x does not verify: its origin, size or root hash was changed after signing", k.Name(), k.KeyHash())
	badBody, _ := note.Sign(&note.Note{Text: origin + "\n01000\n" + root.String() + "\n"}, k)
	for _, tc := range []struct {
		name   string
		msg    []byte
		origin string
		want   string
	}{
		{"size", bytes.Replace(cp, []byte("\n1000\n"), []byte("\n999\n"), 1), origin, badSig},
		{"root", bytes.Replace(cp, []byte(root.String()), []byte(otherRoot.String()), 1), origin, badSig},
		{"origin", cp, "hostpass/web-2/0000000000000000", fmt.Sprintf("checkpoint refused: it is for log %q, not %q", origin, "hostpass/web-2/0000000000000000")},
		{"unknown key", byStranger, origin, fmt.Sprintf("checkpoint refused: it is signed by %s+%08x, no key of this log's chain", stranger.Name(), stranger.KeyHash())},
		{"malformed body", badBody, origin, "checkpoint refused: its size or root hash is malformed: after the origin come the tree size in decimal and the root hash in base64, one per line"},
		{"not a note", []byte("hello\n"), origin, "checkpoint refused: it is not a signed note (malformed note); a checkpoint is the lines origin, size and root hash, a blank line and signature lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := OpenCheckpoint(tc.msg, note.VerifierList(pub), tc.origin)
			wantErr(t, err, tc.want)
		})
	}
	_, err = SignCheckpoint(k, "two\nlines", 1, root)
	wantErr(t, err, `checkpoint origin "two\nlines" refused: an origin is one non-empty line`)
}

// A key certification is never a checkpoint, though one key signs both.
func TestCertIsNoCheckpoint(t *testing.T) {
	_, pub, k1, certs := newChain(t, 1)
	_ = k1
	_, _, err := OpenCheckpoint(certs[0], note.VerifierList(pub), k1.Origin())
	wantErr(t, err, fmt.Sprintf("checkpoint refused: it is for log %q, not %q", certHeader, k1.Origin()))
}

// BenchmarkSignCheckpoint is what a checkpoint costs the daemon: one
// Ed25519 signature over the C2SP text.
func BenchmarkSignCheckpoint(b *testing.B) {
	k, err := generateSignKey("hostpass/bench/0123456789abcdef", 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	root := testRoot(1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := SignCheckpoint(k, k.Origin(), int64(i), root); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenCheckpoint is what a checkpoint costs verify: parsing the
// note and one Ed25519 verification.
func BenchmarkOpenCheckpoint(b *testing.B) {
	k, err := generateSignKey("hostpass/bench/0123456789abcdef", 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	v, _ := note.NewVerifier(k.VerifierKey())
	vs := note.VerifierList(v)
	cp, _ := SignCheckpoint(k, k.Origin(), 123456, testRoot(1))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := OpenCheckpoint(cp, vs, k.Origin()); err != nil {
			b.Fatal(err)
		}
	}
}
