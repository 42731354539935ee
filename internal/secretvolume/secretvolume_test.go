package secretvolume_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"example.com/rotor/internal/secretvolume"
)

func mustWrite(t *testing.T, dir string, files map[string][]byte, opts secretvolume.Options) {
	t.Helper()

	if err := secretvolume.Write(dir, files, opts); err != nil {
		t.Fatalf("Write(%s): %v", dir, err)
	}
}

// assertContent checks the file read through dir/name, as a reader sees it.
func assertContent(t *testing.T, dir, name, want string) {
	t.Helper()

	got, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if string(got) != want {
		t.Errorf("%s: got %q, want %q", name, got, want)
	}
}

// snapshotDirs returns the timestamped directories in dir.
func snapshotDirs(t *testing.T, dir string) []string {
	t.Helper()

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, entry := range entries {
		if entry.IsDir() && strings.HasPrefix(entry.Name(), "..") {
			dirs = append(dirs, entry.Name())
		}
	}
	return dirs
}

func TestWriteCreatesKubeletLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")

	mustWrite(t, dir, map[string][]byte{"tls.crt": []byte("cert 1"), "tls.key": []byte("key 1")}, secretvolume.Options{})

	snapshots := snapshotDirs(t, dir)
	if len(snapshots) != 1 {
		t.Fatalf("timestamped directories: got %v, want one", snapshots)
	}
	if !strings.HasPrefix(snapshots[0], "..20") {
		t.Errorf("timestamped directory: got %q, want a name like ..2026_12_04_10_30_00.123", snapshots[0])
	}
	if target, err := os.Readlink(filepath.Join(dir, secretvolume.DataLink)); err != nil || target != snapshots[0] {
		t.Errorf("..data: got target %q (error %v), want %q", target, err, snapshots[0])
	}
	for _, name := range []string{"tls.crt", "tls.key"} {
		if target, err := os.Readlink(filepath.Join(dir, name)); err != nil || target != filepath.Join("..data", name) {
			t.Errorf("%s: got target %q (error %v), want ..data/%s", name, target, err, name)
		}
	}
	assertContent(t, dir, "tls.crt", "cert 1")
	assertContent(t, dir, "tls.key", "key 1")
}

func TestWriteReplacesPreviousUpdate(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, dir, map[string][]byte{"tls.crt": []byte("cert 1"), "tls.key": []byte("key 1"), "extra.pem": []byte("gone soon")}, secretvolume.Options{})
	first := snapshotDirs(t, dir)

	mustWrite(t, dir, map[string][]byte{"tls.crt": []byte("cert 2"), "tls.key": []byte("key 2")}, secretvolume.Options{})

	second := snapshotDirs(t, dir)
	if len(second) != 1 || slices.Equal(first, second) {
		t.Errorf("timestamped directories: got %v after %v, want one new directory", second, first)
	}
	assertContent(t, dir, "tls.crt", "cert 2")
	assertContent(t, dir, "tls.key", "key 2")
	if _, err := os.Lstat(filepath.Join(dir, "extra.pem")); !os.IsNotExist(err) {
		t.Errorf("extra.pem, which the second update does not contain: got error %v, want it removed", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "..data_tmp")); !os.IsNotExist(err) {
		t.Errorf("..data_tmp: got error %v, want it gone after the swap", err)
	}
}

func TestWriteConvertsPlainFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"tls.crt": "plain cert", "tls.key": "plain key", "notes.txt": "unrelated"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	mustWrite(t, dir, map[string][]byte{"tls.crt": []byte("cert 1"), "tls.key": []byte("key 1")}, secretvolume.Options{})

	assertContent(t, dir, "tls.crt", "cert 1")
	assertContent(t, dir, "tls.key", "key 1")
	if info, err := os.Lstat(filepath.Join(dir, "tls.crt")); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("tls.crt: got mode %v (error %v), want a symlink", info.Mode(), err)
	}
	// A file that no update published is not the writer's to remove.
	assertContent(t, dir, "notes.txt", "unrelated")
}

func TestWriteSetsMode(t *testing.T) {
	dir := t.TempDir()

	mustWrite(t, dir, map[string][]byte{"tls.key": []byte("key")}, secretvolume.Options{Mode: 0o640})

	info, err := os.Stat(filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o640 {
		t.Errorf("tls.key mode: got %v, want %v", got, os.FileMode(0o640))
	}
	snapshot, err := os.Stat(filepath.Join(dir, secretvolume.DataLink))
	if err != nil {
		t.Fatal(err)
	}
	if got := snapshot.Mode().Perm(); got != 0o755 {
		t.Errorf("timestamped directory mode: got %v, want %v", got, os.FileMode(0o755))
	}
}

func TestWriteSetsOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("changing the owner needs root")
	}
	dir := t.TempDir()
	const uid, gid = 10001, 10002

	mustWrite(t, dir, map[string][]byte{"tls.key": []byte("key")}, secretvolume.Options{Mode: 0o600, Owner: &secretvolume.Owner{UID: uid, GID: gid}})

	for _, path := range []string{filepath.Join(dir, "tls.key"), filepath.Join(dir, secretvolume.DataLink)} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		stat := info.Sys().(*syscall.Stat_t)
		if stat.Uid != uid || stat.Gid != gid {
			t.Errorf("%s owner: got %d:%d, want %d:%d", path, stat.Uid, stat.Gid, uid, gid)
		}
	}
}

func TestWriteRejectsInvalidNames(t *testing.T) {
	tests := []struct {
		name  string
		files map[string][]byte
	}{
		{"no files", map[string][]byte{}},
		{"empty name", map[string][]byte{"": []byte("x")}},
		{"path", map[string][]byte{"sub/tls.crt": []byte("x")}},
		{"reserved prefix", map[string][]byte{"..data": []byte("x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()

			err := secretvolume.Write(dir, tt.files, secretvolume.Options{})

			if err == nil {
				t.Fatal("Write: got nil error, want one")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("directory after a rejected Write: got %d entries, want none", len(entries))
			}
		})
	}
}
