package tlsx

import (
	"log/slog"
	"slices"

	"github.com/fsnotify/fsnotify"
)

// dirWatch is an fsnotify watch on the directories of a Reloader's files.
// It watches directories, not files: a watch on tls.crt follows the kubelet's
// symlink to the file in the old timestamped directory and ends when the
// kubelet deletes that directory, so it reports at most one update. A nil
// *dirWatch stands for no watch, and its methods do nothing.
//
// A dirWatch is used by one goroutine, the one in Reloader.Run.
type dirWatch struct {
	watcher *fsnotify.Watcher
	dirs    []string
	log     *slog.Logger

	// failing holds the directories whose last Add failed, so that the
	// failure is logged once and the recovery once.
	failing map[string]bool
}

// startDirWatch watches dirs. It returns nil, after logging a warning, when
// fsnotify cannot start at all, for instance because the limit on inotify
// instances is reached. A directory that cannot be added is logged and
// retried by addMissing.
func startDirWatch(dirs []string, log *slog.Logger) *dirWatch {
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("watching the certificate directories is not possible; polling only", "dirs", dirs, "err", err)
		return nil
	}
	w := &dirWatch{watcher: watcher, dirs: dirs, log: log, failing: make(map[string]bool)}
	w.addMissing()
	return w
}

// channels returns the event and error channels, or nil channels, which
// block forever in a select, for a nil watch.
func (w *dirWatch) channels() (<-chan fsnotify.Event, <-chan error) {
	if w == nil {
		return nil, nil
	}
	return w.watcher.Events, w.watcher.Errors
}

// addMissing adds every directory that is not watched: one whose Add failed
// before, or one whose watch fsnotify dropped because the directory was
// deleted or moved.
func (w *dirWatch) addMissing() {
	if w == nil {
		return
	}
	watched := w.watcher.WatchList()
	for _, dir := range w.dirs {
		if slices.Contains(watched, dir) {
			continue
		}
		if err := w.watcher.Add(dir); err != nil {
			if !w.failing[dir] {
				w.failing[dir] = true
				w.log.Warn("watching a certificate directory failed; polling it until the watch can be added", "dir", dir, "err", err)
			}
			continue
		}
		if w.failing[dir] {
			delete(w.failing, dir)
			w.log.Info("watching a certificate directory again", "dir", dir)
		}
	}
}

// close ends the watch and waits for fsnotify's reader goroutine.
func (w *dirWatch) close() {
	if w == nil {
		return
	}
	if err := w.watcher.Close(); err != nil {
		w.log.Warn("closing the certificate directory watch failed", "err", err)
	}
}
