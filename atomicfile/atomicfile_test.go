package atomicfile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWriteReplacesAndLeavesNoTemporaryFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first", "second"} {
		if err := Write(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Fatalf("content %q, want %q", b, content)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("dir holds %d files, want only state.json", len(entries))
	}
}

func TestWriteIntoAFileFails(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o600)
	if err := Write(filepath.Join(blocker, "state.json"), []byte("x")); err == nil {
		t.Fatal("want an error when the directory is a file")
	}
}

// syncedDirs records the directories synced while fn runs.
func syncedDirs(t *testing.T, fn func()) []string {
	t.Helper()
	var synced []string
	syncDir = func(dir string) error { synced = append(synced, dir); return SyncDir(dir) }
	t.Cleanup(func() { syncDir = SyncDir })
	fn()
	return synced
}

func TestWriteSyncsTheParentOfEveryDirectoryItCreates(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "a", "b", "state.json")
	synced := syncedDirs(t, func() {
		if err := Write(path, []byte("x")); err != nil {
			t.Fatal(err)
		}
	})
	want := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")}
	if !slices.Equal(synced, want) {
		t.Errorf("synced %q, want %q (the parent of each new directory, then the file's directory)", synced, want)
	}
}

func TestMkdirAll(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "x", "y")
	synced := syncedDirs(t, func() {
		if err := MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	})
	if want := []string{root, filepath.Join(root, "x")}; !slices.Equal(synced, want) {
		t.Errorf("synced %q, want %q", synced, want)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("stat %v %v, want a directory of mode 0700", fi, err)
	}
	if again := syncedDirs(t, func() { MkdirAll(dir, 0o700) }); len(again) != 0 {
		t.Errorf("an existing directory synced %q, want nothing", again)
	}
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o600)
	if err := MkdirAll(filepath.Join(file, "z"), 0o700); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("under a file: %v, want not a directory", err)
	}
	if err := MkdirAll(file, 0o700); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file: %v, want not a directory", err)
	}
}
