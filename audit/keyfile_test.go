package audit

import (
	"bytes"
	"encoding/hex"
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

// The first overwrite of a hostpass 3 key file (no check), torn at every
// byte, either reads as the old key of the old epoch, or the new key of the
// new epoch, or is refused: a tear such as `{"c` + `poch":5,"key":…` used
// to read as epoch 0 with the old key (an unknown member ignored, a missing
// epoch taken as 0).
func TestTornUpgradeOfAHostpass3KeyFileIsNeverUsed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.key")
	k5 := bytes.Repeat([]byte{0x5a}, 32)
	k6 := NextKey(k5)
	for _, before := range [][]byte{
		[]byte(`{"epoch":5,"key":"` + hex.EncodeToString(k5) + `"}` + "\n"),
		[]byte(`{"key":"` + hex.EncodeToString(k5) + `","epoch":5}` + "\n"),
		[]byte(`{"epoch":5,"key":"` + hex.EncodeToString(k5) + `"}` + "\n" + strings.Repeat(" ", 80)),
	} {
		after := keyFileBytes(6, k6)
		for k := 0; k <= max(len(after), len(before)); k++ {
			mix := append(append([]byte(nil), after[:min(k, len(after))]...), before[min(k, len(before)):]...)
			os.WriteFile(path, mix, 0o600)
			epoch, key, err := ReadKeyFile(path)
			if err == nil && !(epoch == 5 && bytes.Equal(key, k5)) && !(epoch == 6 && bytes.Equal(key, k6)) {
				t.Fatalf("torn at byte %d: read epoch %d key %x, neither the old key nor the new: used silently\n%s", k, epoch, key, mix)
			}
		}
	}
}

// A key file with a member hostpass does not write, or without its epoch,
// is refused, naming what a key file holds.
func TestKeyFileIsDecodedStrictly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.key")
	k := strings.Repeat("ab", 32)
	for _, content := range []string{
		`{"cpoch":5,"key":"` + k + `"}`,
		`{"key":"` + k + `"}`,
		`{"epoch":5}`,
		`{"epoch":5,"key":"` + k + `"}{"epoch":6}`,
	} {
		os.WriteFile(path, []byte(content), 0o600)
		_, _, err := ReadKeyFile(path)
		if err == nil || !strings.Contains(err.Error(), "is damaged or not a hostpass key file") || !strings.Contains(err.Error(), "one JSON object with check, epoch and key, and nothing else") {
			t.Errorf("%s: %v, want it refused as damaged", content, err)
		}
	}
}
