package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTornKeyFileIsNeverUsed tears the daemon's in-place overwrite of its key
// file at every byte, both ways round, as a crash or a full disk can: every
// mix is refused, or reads as the old key or the new one, never as a key
// that is neither.
func TestTornKeyFileIsNeverUsed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seal.key")
	if err := NewKeyFile(path); err != nil {
		t.Fatal(err)
	}
	_, k0, _ := ReadKeyFile(path)
	k1, k2 := NextKey(k0), NextKey(NextKey(k0))
	overwriteKeyFile(path, 1, k1)
	before, _ := os.ReadFile(path)
	overwriteKeyFile(path, 2, k2)
	after, _ := os.ReadFile(path)
	if len(before) != len(after) {
		t.Fatalf("key files of %d and %d bytes: the test wants equal lengths", len(before), len(after))
	}
	refused := 0
	for k := 1; k < len(after); k++ {
		for _, mix := range [][]byte{
			append(append([]byte(nil), after[:k]...), before[k:]...),
			append(append([]byte(nil), before[:k]...), after[k:]...),
		} {
			os.WriteFile(path, mix, 0o600)
			epoch, key, err := ReadKeyFile(path)
			switch {
			case err != nil:
				refused++
				if !strings.Contains(err.Error(), "is damaged") {
					t.Errorf("torn at byte %d: %v, want an error saying the key file is damaged", k, err)
				}
			case !(epoch == 1 && bytes.Equal(key, k1)) && !(epoch == 2 && bytes.Equal(key, k2)):
				t.Fatalf("torn at byte %d: read epoch %d key %x, neither the old key nor the new: used silently\n%s", k, epoch, key, mix)
			}
		}
	}
	if refused == 0 {
		t.Fatal("no torn mix was refused")
	}

	mix := append(append([]byte(nil), before[:60]...), after[60:]...) // inside the key
	os.WriteFile(path, mix, 0o600)
	_, err := OpenWith(filepath.Join(dir, "audit.jsonl"), Options{SealKey: path})
	want := "sealing key: key file " + path + " is damaged: its check does not match its epoch and key, as when a crash or a full disk tears the daemon's overwrite; hostpass will not use it; if it is the daemon's copy, restore it from the initial key (docs/audit.md, \"A damaged key file\")"
	if err == nil || err.Error() != want {
		t.Fatalf("open with a torn key file:\n got %v\nwant %s", err, want)
	}
}

func TestKeyFileOfHostpass3StillReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.key")
	os.WriteFile(path, []byte(`{"epoch":3,"key":"`+strings.Repeat("ab", 32)+`"}`+"\n"), 0o600)
	if epoch, key, err := ReadKeyFile(path); err != nil || epoch != 3 || len(key) != 32 {
		t.Fatalf("key file without a check: epoch %d %v, want it read as hostpass 1 to 3 wrote it", epoch, err)
	}
}
