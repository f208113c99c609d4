package audit

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoints: the tree's size and root hash, signed by the epoch's key, in
// the C2SP tlog-checkpoint format (https://c2sp.org/tlog-checkpoint): a
// signed note whose text is
//
//	<origin>
//	<size, decimal>
//	<root hash, base64>
//
// tlog.FormatTree and tlog.ParseTree write and read the same three lines
// with the Go checksum database's origin, "go.sum database tree"; hostpass
// swaps that first line for its own origin, so that the size and hash are
// written and checked by the library.

// tlogOrigin is the first line tlog's FormatTree writes and ParseTree wants.
const tlogOrigin = "go.sum database tree\n"

// SignCheckpoint signs a checkpoint of the tree (size, root) of the log
// origin.
func SignCheckpoint(signer note.Signer, origin string, size int64, root tlog.Hash) ([]byte, error) {
	if origin == "" || strings.ContainsAny(origin, "\n") {
		return nil, fmt.Errorf("checkpoint origin %q refused: an origin is one non-empty line", origin)
	}
	if size < 0 {
		return nil, fmt.Errorf("checkpoint size %d refused: a tree holds 0 or more records", size)
	}
	body := strings.TrimPrefix(string(tlog.FormatTree(tlog.Tree{N: size, Hash: root})), tlogOrigin)
	return note.Sign(&note.Note{Text: origin + "\n" + body}, signer)
}

// OpenCheckpoint checks a checkpoint's signature by one of verifiers and
// that it is a checkpoint of origin, and returns its tree size and root.
// Other signatures on it (a witness's cosignature) are allowed and ignored.
func OpenCheckpoint(msg []byte, verifiers note.Verifiers, origin string) (size int64, root tlog.Hash, err error) {
	n, err := note.Open(msg, verifiers)
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return 0, tlog.Hash{}, fmt.Errorf("checkpoint refused: it is signed by %s, no key of this log's chain", sigNames(unverified.Note.UnverifiedSigs))
	case errors.As(err, &invalid):
		return 0, tlog.Hash{}, fmt.Errorf("checkpoint refused: the signature by %s+%08x does not verify: its origin, size or root hash was changed after signing", invalid.Name, invalid.Hash)
	case err != nil && err.Error() != "malformed note":
		return 0, tlog.Hash{}, fmt.Errorf("checkpoint refused: %w", err) // the verifiers' own error
	case err != nil:
		return 0, tlog.Hash{}, fmt.Errorf("checkpoint refused: it is not a signed note (%v); a checkpoint is the lines origin, size and root hash, a blank line and signature lines", err)
	}
	first, rest, _ := strings.Cut(n.Text, "\n")
	if first != origin {
		return 0, tlog.Hash{}, fmt.Errorf("checkpoint refused: it is for log %q, not %q", first, origin)
	}
	tree, err := tlog.ParseTree([]byte(tlogOrigin + rest))
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("checkpoint refused: its size or root hash is malformed: after the origin come the tree size in decimal and the root hash in base64, one per line")
	}
	return tree.N, tree.Hash, nil
}
