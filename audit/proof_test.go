package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// mth is RFC 6962's Merkle Tree Hash (section 2.1), written out with
// crypto/sha256 as the RFC defines it, to check tlog against: MTH({}) =
// SHA-256(), a leaf is SHA-256(0x00 || d), a node SHA-256(0x01 || left ||
// right), split at the largest power of two smaller than n.
func mth(leaves [][]byte) [32]byte {
	n := len(leaves)
	switch n {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	l, r := mth(leaves[:k]), mth(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// treeOf builds a tree in memory from lines.
func treeOf(t *testing.T, lines [][]byte) *Tree {
	t.Helper()
	tr := NewTree()
	for _, l := range lines {
		if err := tr.Append(l); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func rootOf(t *testing.T, tr *Tree) tlog.Hash {
	t.Helper()
	h, err := tr.Root()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestTreeCTVectors: the leaf inputs and roots of RFC 6962's test data, as
// Certificate Transparency's tests and transparency-dev/merkle's
// testonly/constants.go carry them.
func TestTreeCTVectors(t *testing.T) {
	leaves := []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	roots := []string{
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	tr := NewTree()
	for n, want := range roots {
		if n > 0 {
			if err := tr.Append(mustHex(t, leaves[n-1])); err != nil {
				t.Fatal(err)
			}
		}
		if got := rootOf(t, tr); hex.EncodeToString(got[:]) != want {
			t.Errorf("root of %d leaves = %x, want %s", n, got, want)
		}
	}
}

// recordLines are lines shaped like the log's, n of them.
func recordLines(n int) [][]byte {
	var out [][]byte
	prev := Genesis
	for i := 1; i <= n; i++ {
		rec := Record{Time: time.Date(2026, 11, 28, 10, 0, i, 0, time.UTC), Seq: uint64(i), Event: EndpointJoin, Outcome: OK,
			Driver: "hostpass", Host: "node1", EndpointID: fmt.Sprintf("%064x", i), Prev: prev}
		line, err := encode(&rec, nil)
		if err != nil {
			panic(err)
		}
		out = append(out, line)
		prev = rec.Hash
	}
	return out
}

func TestTreeRootMatchesRFC6962(t *testing.T) {
	lines := recordLines(7)
	for _, n := range []int{0, 1, 2, 3, 7} {
		if got, want := rootOf(t, treeOf(t, lines[:n])), mth(lines[:n]); got != want {
			t.Errorf("root of %d records = %x, RFC 6962 computes %x", n, got, want)
		}
	}
	// Several lines in one Append (a group commit) give the same tree.
	tr := NewTree()
	if err := tr.Append(lines[:3]...); err != nil {
		t.Fatal(err)
	}
	if err := tr.Append(lines[3:]...); err != nil {
		t.Fatal(err)
	}
	if got, want := rootOf(t, tr), mth(lines); got != want {
		t.Errorf("root of 7 records appended 3 + 4 = %x, want %x", got, want)
	}
}

func TestTreeRecordProofs(t *testing.T) {
	lines := recordLines(7)
	tr := treeOf(t, lines)
	root := rootOf(t, tr)
	for i, line := range lines {
		seq := uint64(i + 1)
		p, err := tr.ProveRecord(7, LeafIndex(seq))
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckRecord(p, 7, root, seq, line); err != nil {
			t.Errorf("seq %d: %v", seq, err)
		}
		changed := bytes.Clone(line)
		changed[len(changed)/2] ^= 1
		if err := CheckRecord(p, 7, root, seq, changed); !errors.Is(err, ErrProof) {
			t.Errorf("seq %d with one byte changed: err = %v, want ErrProof", seq, err)
		}
		if seq < 7 {
			if err := CheckRecord(p, 7, root, seq+1, line); !errors.Is(err, ErrProof) {
				t.Errorf("seq %d's proof claimed for seq %d: err = %v, want ErrProof", seq, seq+1, err)
			}
		}
	}
	if _, err := tr.ProveRecord(8, 0); err == nil || !strings.Contains(err.Error(), "the tree holds 7") {
		t.Errorf("proof in a tree larger than held: err = %v", err)
	}
}

func TestTreeConsistencyProofs(t *testing.T) {
	lines := recordLines(8)
	tr := treeOf(t, lines)
	for n := int64(1); n <= 8; n++ {
		rootN, err := tr.RootAt(n)
		if err != nil {
			t.Fatal(err)
		}
		for m := int64(1); m <= n; m++ {
			rootM, err := tr.RootAt(m)
			if err != nil {
				t.Fatal(err)
			}
			p, err := tr.ProveTree(n, m)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckTree(p, n, rootN, m, rootM); err != nil {
				t.Errorf("%d ⊑ %d: %v", m, n, err)
			}

			// Rewritten history: one record before m changed, the chain
			// rebuilt after it; the checkpoint of size m holds the old root.
			for j := int64(0); j < m; j++ {
				forged := append([][]byte(nil), lines[:n]...)
				forged[j] = bytes.Replace(forged[j], []byte(`"node1"`), []byte(`"node2"`), 1)
				ft := treeOf(t, forged)
				fp, err := ft.ProveTree(n, m)
				if err != nil {
					t.Fatal(err)
				}
				if err := CheckTree(fp, n, rootOf(t, ft), m, rootM); !errors.Is(err, ErrProof) {
					t.Errorf("%d ⊑ %d with record %d rewritten: err = %v, want ErrProof", m, n, j+1, err)
				}
			}

			// A cut tail: the host holds n-1 records but a checkpoint
			// committed to n; it cannot prove n from what it has, and its
			// proof for n-1 does not pass for n.
			if n > 1 && m < n {
				cut := treeOf(t, lines[:n-1])
				if _, err := cut.ProveTree(n, m); err == nil {
					t.Errorf("a tree of %d records proved size %d", n-1, n)
				}
				cp, err := cut.ProveTree(n-1, m)
				if err != nil {
					t.Fatal(err)
				}
				if err := CheckTree(cp, n, rootN, m, rootM); !errors.Is(err, ErrProof) {
					t.Errorf("%d ⊑ %d from a tail cut to %d: err = %v, want ErrProof", m, n, n-1, err)
				}
			}
		}
	}
	if err := CheckTree(nil, 3, tlog.Hash{}, 4, tlog.Hash{}); !errors.Is(err, ErrProof) {
		t.Errorf("old size past size: err = %v", err)
	}
}

// logLines reads a log's lines, in chain order.
func logLines(t *testing.T, files []string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte{'\n'}), []byte{'\n'}) {
			if len(l) > 0 {
				out = append(out, l)
			}
		}
	}
	return out
}

// rotatedLog writes a log of joins records, rotated after the first
// half: two files.
func rotatedLog(t *testing.T, joins int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenWith(path, Options{Host: "node1", Driver: "hostpass"})
	if err != nil {
		t.Fatal(err)
	}
	appendJoins(t, l, 0, joins/2)
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	appendJoins(t, l, joins/2, joins)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func appendJoins(t *testing.T, l *Log, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := l.Append(Record{Event: EndpointJoin, Outcome: OK, Driver: "hostpass", Host: "node1", EndpointID: fmt.Sprintf("%064x", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuildTreeFromLog(t *testing.T) {
	path := rotatedLog(t, 40)
	files, err := Files(path)
	if err != nil || len(files) != 2 {
		t.Fatalf("files %v, %v: want a rotated file and the current one", files, err)
	}
	sum, err := Verify(files, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := BuildTree(files)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Size() != int64(sum.LastSeq) {
		t.Errorf("tree size %d, log's last seq %d", tr.Size(), sum.LastSeq)
	}
	lines := logLines(t, files)
	if got, want := rootOf(t, tr), rootOf(t, treeOf(t, lines)); got != want {
		t.Errorf("BuildTree root %x, line by line %x", got, want)
	}
	if got, want := rootOf(t, tr), mth(lines); got != want {
		t.Errorf("BuildTree root %x, RFC 6962 %x", got, want)
	}
	p, err := tr.ProveRecord(tr.Size(), LeafIndex(sum.LastSeq))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRecord(p, tr.Size(), rootOf(t, tr), sum.LastSeq, lines[len(lines)-1]); err != nil {
		t.Error(err)
	}
}

func TestBuildTreeRefusesLogWithoutGenesis(t *testing.T) {
	path := rotatedLog(t, 10)
	files, _ := Files(path)
	_, err := BuildTree(files[1:])
	if err == nil || !strings.Contains(err.Error(), "expected seq 1 as leaf 0 of the tree, found seq") {
		t.Errorf("err = %v", err)
	}
}

// storeBytes reads the tree store of the log at path.
func storeBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(TreeStorePath(path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openTree(t *testing.T, path string) (*Tree, int64) {
	t.Helper()
	tr, err := OpenTree(path)
	if err != nil {
		t.Fatal(err)
	}
	written := tr.hashes.(*fileHashes).written
	t.Cleanup(func() { tr.Close() })
	return tr, written
}

func TestTreeStore(t *testing.T) {
	path := rotatedLog(t, 40)
	files, _ := Files(path)
	mem, err := BuildTree(files)
	if err != nil {
		t.Fatal(err)
	}
	want := rootOf(t, mem)

	tr, written := openTree(t, path)
	if got := rootOf(t, tr); got != want || tr.Size() != mem.Size() {
		t.Fatalf("new store: size %d root %x, want %d %x", tr.Size(), got, mem.Size(), want)
	}
	if written != tlog.StoredHashCount(mem.Size()) {
		t.Errorf("new store: wrote %d hashes, want %d", written, tlog.StoredHashCount(mem.Size()))
	}
	good := storeBytes(t, path)
	if in, err := FilesIn(filepath.Dir(path)); err != nil || strings.Join(in, " ") != strings.Join(files, " ") {
		t.Errorf("FilesIn with the store beside the log: %v, %v; want %v", in, err, files)
	}
	if int64(len(good)) != tlog.StoredHashCount(mem.Size())*tlog.HashSize {
		t.Fatalf("store of %d bytes for %d records", len(good), mem.Size())
	}
	tr.Close()

	// Reopened intact: nothing written.
	tr, written = openTree(t, path)
	if written != 0 || rootOf(t, tr) != want {
		t.Errorf("reopened: wrote %d hashes, root %x; want 0, %x", written, rootOf(t, tr), want)
	}
	tr.Close()

	damage := map[string]func([]byte) []byte{
		"torn in a hash":    func(b []byte) []byte { return b[:len(b)-40] },
		"cut to nothing":    func(b []byte) []byte { return nil },
		"torn past the end": func(b []byte) []byte { return append(bytes.Clone(b), 1, 2, 3, 4, 5, 6, 7, 8) },
		"one byte flipped":  func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/3] ^= 0x80; return b },
		"zeros at the end":  func(b []byte) []byte { b = bytes.Clone(b); clear(b[len(b)-96:]); return b },
		"longer than the log": func(b []byte) []byte {
			return append(bytes.Clone(b), bytes.Repeat([]byte{7}, 5*tlog.HashSize)...)
		},
	}
	for name, hurt := range damage {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(TreeStorePath(path), hurt(good), 0o640); err != nil {
				t.Fatal(err)
			}
			tr, written := openTree(t, path)
			if got := rootOf(t, tr); got != want {
				t.Errorf("root %x, want %x", got, want)
			}
			if !bytes.Equal(storeBytes(t, path), good) {
				t.Errorf("store not rebuilt as the log gives it")
			}
			if !strings.Contains(name, "past the end") && name != "longer than the log" && written == 0 {
				t.Errorf("nothing rewritten")
			}
			tr.Close()
		})
	}
	os.Remove(TreeStorePath(path))
	tr, _ = openTree(t, path)
	if rootOf(t, tr) != want {
		t.Error("missing store not rebuilt")
	}
}

// TestTreeStoreAppend: records the daemon appends to the log and the tree
// store are there after a reopen, without a rebuild.
func TestTreeStoreAppend(t *testing.T) {
	path := rotatedLog(t, 10)
	tr, _ := openTree(t, path)
	l, err := OpenWith(path, Options{Host: "node1", Driver: "hostpass"})
	if err != nil {
		t.Fatal(err)
	}
	appendJoins(t, l, 10, 17)
	l.Close()
	files, _ := Files(path)
	lines := logLines(t, files)
	if err := tr.Append(lines[tr.Size():]...); err != nil {
		t.Fatal(err)
	}
	want := rootOf(t, tr)
	if want != mth(lines) {
		t.Fatal("appended store's root is not the log's")
	}
	tr.Close()
	tr, written := openTree(t, path)
	if written != 0 || rootOf(t, tr) != want {
		t.Errorf("reopened: wrote %d hashes, root %x; want 0, %x", written, rootOf(t, tr), want)
	}
	// Proofs read from the store are the ones the lines give.
	mem := treeOf(t, lines)
	for n := int64(1); n <= tr.Size(); n++ {
		for i := int64(0); i < n; i++ {
			got, err1 := tr.ProveRecord(n, i)
			want, err2 := mem.ProveRecord(n, i)
			if err1 != nil || err2 != nil || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("record %d in %d: store %v (%v), memory %v (%v)", i+1, n, got, err1, want, err2)
			}
			got2, err1 := tr.ProveTree(n, i+1)
			want2, err2 := mem.ProveTree(n, i+1)
			if err1 != nil || err2 != nil || fmt.Sprint(got2) != fmt.Sprint(want2) {
				t.Fatalf("%d ⊑ %d: store %v (%v), memory %v (%v)", i+1, n, got2, err1, want2, err2)
			}
		}
	}
}

// TestTreeConcurrent: appends, roots and proofs from many goroutines (run
// with -race).
func TestTreeConcurrent(t *testing.T) {
	lines := recordLines(64)
	tr := NewTree()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, l := range lines {
			if err := tr.Append(l); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 100 {
		if n := tr.Size(); n > 0 {
			if _, err := tr.ProveRecord(n, n-1); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tr.Root(); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if rootOf(t, tr) != mth(lines) {
		t.Error("root after concurrent use is not the lines' root")
	}
}

// TestTreeStoreWithoutGenesis: once the oldest file is removed, the leaves
// before the log's first record come from the store only.
func TestTreeStoreWithoutGenesis(t *testing.T) {
	path := rotatedLog(t, 20)
	tr, _ := openTree(t, path)
	want := rootOf(t, tr)
	tr.Close()
	files, _ := Files(path)
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	tr, written := openTree(t, path)
	if written != 0 || rootOf(t, tr) != want {
		t.Errorf("without genesis: wrote %d hashes, root %x; want 0, %x", written, rootOf(t, tr), want)
	}
	tr.Close()
	os.Remove(TreeStorePath(path))
	_, err := OpenTree(path)
	if err == nil || !strings.Contains(err.Error(), "those records are in no file, so the tree cannot be rebuilt") {
		t.Errorf("no store, no genesis: err = %v", err)
	}
}

// BenchmarkBuildTree1M builds the tree over the 1,000,000-record log of
// BenchmarkVerify1M, in memory: what verify --pubkey adds to Verify if it
// reads the log again (one op is one whole log).
func BenchmarkBuildTree1M(b *testing.B) {
	files := genMillion(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr, err := BuildTree(files)
		if err != nil || tr.Size() < 1_000_000 {
			b.Fatal(tr.Size(), err)
		}
		b.ReportMetric(float64(tlog.StoredHashCount(tr.Size())*tlog.HashSize)/(1<<20), "MiB-hashes")
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap-with-tree")
		runtime.KeepAlive(tr)
	}
}

// BenchmarkOpenTree1M opens the tree store of the same log, intact: what a
// daemon start costs with the store checked against the log.
func BenchmarkOpenTree1M(b *testing.B) {
	files := genMillion(b)
	path := files[len(files)-1]
	defer os.Remove(TreeStorePath(path))
	tr, err := OpenTree(path) // writes the store
	if err != nil {
		b.Fatal(err)
	}
	tr.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr, err := OpenTree(path)
		if err != nil || tr.hashes.(*fileHashes).written != 0 {
			b.Fatal(err)
		}
		tr.Close()
	}
}

// joinLine is a join record's line with a four-link host view, as genLog
// writes them (about 900 bytes).
func joinLine(b *testing.B) []byte {
	files := genLog(b, b.TempDir(), 1, "")
	lines := bytes.Split(bytes.TrimSpace(must(os.ReadFile(files[len(files)-1]))), []byte{'\n'})
	return lines[len(lines)-1]
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkTreeAppend is the cost one record adds to the log's commit when
// the daemon keeps the tree: one op is one record appended to the tree, in
// memory or with a store, alone or in a group commit of 64 lines (compare
// BenchmarkAppendGroupCommit's ns/op).
func BenchmarkTreeAppend(b *testing.B) {
	line := joinLine(b)
	group := make([][]byte, 64)
	for i := range group {
		group[i] = line
	}
	for _, c := range []struct {
		store bool
		group int
	}{{false, 1}, {true, 1}, {true, 64}} {
		b.Run(fmt.Sprintf("store=%v/group=%d", c.store, c.group), func(b *testing.B) {
			tr := NewTree()
			if c.store {
				var err error
				if tr, err = OpenTree(filepath.Join(b.TempDir(), "audit.jsonl")); err != nil {
					b.Fatal(err)
				}
				defer tr.Close()
			}
			b.SetBytes(int64(len(line)))
			b.ResetTimer()
			for i := 0; i < b.N; i += c.group {
				if err := tr.Append(group[:min(c.group, b.N-i)]...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRead1M reads the same log through the read pipeline and does
// nothing with its lines: the part of BenchmarkBuildTree1M (and of
// BenchmarkVerify1M) that one pass over the log costs whatever it does.
func BenchmarkRead1M(b *testing.B) {
	files := genMillion(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, f := range files {
			if err := eachBatch(f, func(*batch) {}, func(*batch) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkTreeFromHashes1M is the part of building the tree that runs in
// order, on one core: 1,000,000 leaves whose record hashes are known.
func BenchmarkTreeFromHashes1M(b *testing.B) {
	leaves := make([]tlog.Hash, 1_000_000)
	for i := range leaves {
		leaves[i] = tlog.RecordHash([]byte(fmt.Sprint(i)))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr := NewTree()
		for j := 0; j < len(leaves); j += batchLines {
			if err := tr.appendHashes(leaves[j:min(j+batchLines, len(leaves))]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
