// Package secretvolume writes a set of files into a directory the way the
// kubelet updates a mounted Secret or ConfigMap volume, so that tests and
// the development stack can renew certificates exactly as a cluster does.
//
// The layout, for the files tls.crt and tls.key in dir:
//
//	dir/..2026_12_04_10_30_00.1234567/tls.crt  the files of one update
//	dir/..2026_12_04_10_30_00.1234567/tls.key
//	dir/..data -> ..2026_12_04_10_30_00.1234567
//	dir/tls.crt -> ..data/tls.crt
//	dir/tls.key -> ..data/tls.key
//
// An update writes a new timestamped directory, points the new symlink
// ..data_tmp at it and renames ..data_tmp over ..data. rename(2) replaces
// ..data in one step, so every path through ..data leads to the old files or
// to the new ones. Then it removes the previous timestamped directory.
//
// A reader that opens dir/tls.crt follows the symlinks at that moment, so
// the file it reads is complete. Two files opened at different moments can
// still come from different updates. A program that watches for updates must
// watch dir itself: a watch on dir/tls.crt follows the symlink to the file
// in the old timestamped directory and ends when that directory is removed.
package secretvolume

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Names of the kubelet's entries in a volume directory.
const (
	DataLink    = "..data"
	dataTmpLink = "..data_tmp"
)

// DefaultMode is the mode of every file when Options.Mode is zero. It is
// also the kubelet's default for Secret volumes.
const DefaultMode fs.FileMode = 0o644

// Options configures Write. The zero value writes files with DefaultMode,
// owned by the calling process.
type Options struct {
	// Mode is the permission of every file. Zero means DefaultMode.
	Mode fs.FileMode

	// Owner, if not nil, owns the new timestamped directory and its files.
	// Changing the owner needs root or CAP_CHOWN.
	Owner *Owner
}

// Owner is a numeric user and group.
type Owner struct {
	UID, GID int
}

// Write publishes files, a map from base name to content, in dir as one
// update. It creates dir when it does not exist. A name must not be empty,
// contain a path separator or start with "..", which the layout reserves.
//
// A top-level name that is a regular file, as an earlier writer may have
// left it, is replaced by the symlink to ..data. That replacement happens
// one name at a time, after ..data has moved, so a reader can briefly see a
// new file under one name and an old regular file under another. A name that
// an earlier update published and files no longer contains is removed.
//
// Calls for the same dir must not overlap. Write leaves no partial update
// behind: if it fails before ..data moves, the new timestamped directory is
// removed and the previous update stays in place.
func Write(dir string, files map[string][]byte, opts Options) error {
	if err := validateNames(files); err != nil {
		return err
	}
	mode := opts.Mode
	if mode == 0 {
		mode = DefaultMode
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create volume directory %s: %w", dir, err)
	}

	previous, err := readDataLink(dir)
	if err != nil {
		return err
	}
	snapshot, err := writeSnapshot(dir, files, mode, opts.Owner)
	if err != nil {
		return err
	}
	if err := swapDataLink(dir, snapshot); err != nil {
		_ = os.RemoveAll(filepath.Join(dir, snapshot))
		return err
	}

	if err := linkNames(dir, files); err != nil {
		return err
	}
	if previous == "" || previous == snapshot {
		return nil
	}
	if err := removeStaleNames(dir, previous, files); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(dir, previous)); err != nil {
		return fmt.Errorf("remove previous update %s: %w", filepath.Join(dir, previous), err)
	}
	return nil
}

func validateNames(files map[string][]byte) error {
	if len(files) == 0 {
		return errors.New("no files to write: a volume update needs at least one file")
	}
	for name := range files {
		if name == "" || name == "." || strings.ContainsRune(name, filepath.Separator) || strings.HasPrefix(name, "..") {
			return fmt.Errorf("invalid file name %q: want a base name that does not start with \"..\"", name)
		}
	}
	return nil
}

// readDataLink returns the timestamped directory that ..data points to, or
// "" when dir has no ..data yet.
func readDataLink(dir string) (string, error) {
	target, err := os.Readlink(filepath.Join(dir, DataLink))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w; remove it if it is not a symlink", filepath.Join(dir, DataLink), err)
	}
	return target, nil
}

// writeSnapshot writes files into a new timestamped directory in dir and
// returns its base name.
func writeSnapshot(dir string, files map[string][]byte, mode fs.FileMode, owner *Owner) (string, error) {
	pattern := time.Now().UTC().Format("..2006_01_02_15_04_05.")
	path, err := os.MkdirTemp(dir, pattern)
	if err != nil {
		return "", fmt.Errorf("create update directory in %s: %w", dir, err)
	}
	written := func() error {
		// MkdirTemp creates the directory with mode 0700, which would keep
		// an owner other than the writer out.
		if err := os.Chmod(path, 0o755); err != nil {
			return err
		}
		for _, name := range slices.Sorted(maps.Keys(files)) {
			if err := writeFile(filepath.Join(path, name), files[name], mode, owner); err != nil {
				return err
			}
		}
		if owner != nil {
			return os.Chown(path, owner.UID, owner.GID)
		}
		return nil
	}()
	if written != nil {
		_ = os.RemoveAll(path)
		return "", fmt.Errorf("write update directory %s: %w", path, written)
	}
	return filepath.Base(path), nil
}

// writeFile writes a new file and sets mode explicitly, because the umask
// would otherwise narrow it.
func writeFile(path string, data []byte, mode fs.FileMode, owner *Owner) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	if owner != nil {
		return os.Chown(path, owner.UID, owner.GID)
	}
	return nil
}

// swapDataLink points ..data at snapshot in one step.
func swapDataLink(dir, snapshot string) error {
	tmp := filepath.Join(dir, dataTmpLink)
	// A writer that stopped between Symlink and Rename leaves ..data_tmp.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	if err := os.Symlink(snapshot, tmp); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, DataLink)); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, DataLink, err)
	}
	return nil
}

// linkNames makes every name in dir a symlink to ..data/name. A name that
// is already that symlink is left alone. Anything else under the name, such
// as a regular file, is replaced by renaming a new symlink over it.
func linkNames(dir string, files map[string][]byte) error {
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(dir, name)
		target := filepath.Join(DataLink, name)
		if current, err := os.Readlink(path); err == nil && current == target {
			continue
		}

		tmp := filepath.Join(dir, ".."+name+".tmp")
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", tmp, err)
		}
		if err := os.Symlink(target, tmp); err != nil {
			return fmt.Errorf("create symlink for %s: %w", path, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("replace %s with a symlink to %s: %w", path, target, err)
		}
	}
	return nil
}

// removeStaleNames removes the symlinks of names that the previous update
// published and files no longer contains.
func removeStaleNames(dir, previous string, files map[string][]byte) error {
	entries, err := os.ReadDir(filepath.Join(dir, previous))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list previous update %s: %w", filepath.Join(dir, previous), err)
	}
	for _, entry := range entries {
		name := entry.Name()
		if _, published := files[name]; published {
			continue
		}
		path := filepath.Join(dir, name)
		if target, err := os.Readlink(path); err != nil || target != filepath.Join(DataLink, name) {
			continue
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove %s, which the new update no longer contains: %w", path, err)
		}
	}
	return nil
}
