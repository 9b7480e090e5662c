package platform

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// How the agent watches resolv.conf while it manages it (resolvConfDNS).
//
// It learns of a rewrite from inotify, on the file and on its directory: a
// watch on the file sees it rewritten in place, also when the file is
// bind-mounted over /etc/resolv.conf (ip netns exec, containers), whose
// writers go through the mount's source; a watch on the directory sees it
// replaced (a rename over it, as NetworkManager and resolvconf do), removed
// or made a symlink. An agent that is idle then does not wake for it at all.
// A check also runs every watchSafety, for what inotify cannot see (a file
// system without it), and every watchPoll when inotify cannot be had at all
// (the user's inotify instances used up).
const (
	watchSafety = time.Minute
	watchPoll   = 2 * time.Second
	// watchSettle is how long after a first event the check runs, so that a
	// writer's burst (open, writes, close, rename) makes one check; and
	// watchGap the least time between checks, so that a program fighting
	// the agent over the file cannot make it spin.
	watchSettle = 100 * time.Millisecond
	watchGap    = time.Second
)

// watchOpts are a file watch's intervals (the constants above, shorter in
// tests) and whether it may use inotify.
type watchOpts struct {
	safety, poll, settle, gap time.Duration
	noInotify                 bool
}

func defaultWatchOpts() watchOpts {
	return watchOpts{safety: watchSafety, poll: watchPoll, settle: watchSettle, gap: watchGap}
}

// Inotify masks: the file's own changes, and its directory's entries.
const (
	fileEvents = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	dirEvents  = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE |
		unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_ONLYDIR
)

// fileWatch calls check when the file at path may have changed, on a
// goroutine it owns, until stop.
type fileWatch struct {
	path  string
	check func()
	opts  watchOpts
	log   *zap.Logger

	in      *os.File       // the inotify instance; nil when polling
	ifd     int            // its descriptor (in.Fd() would make it blocking)
	fileWD  int            // the watch on the file's current inode, or -1
	changed chan struct{}  // the reader's kick to the loop (1 buffered)
	done    chan struct{}  // closed by stop
	looping sync.WaitGroup // loop, which adds watches: ends before in closes
	reading sync.WaitGroup // read
}

// watchFile starts watching path (see above).
func watchFile(path string, opts watchOpts, log *zap.Logger, check func()) *fileWatch {
	w := &fileWatch{path: path, check: check, opts: opts, log: log, fileWD: -1,
		changed: make(chan struct{}, 1), done: make(chan struct{})}
	every := opts.safety
	if err := w.startInotify(); err != nil {
		log.Warn("cannot watch resolv.conf with inotify; checking it periodically instead",
			zap.String("path", path), zap.Duration("every", opts.poll), zap.Error(err))
		every = opts.poll
	}
	w.looping.Add(1)
	go w.loop(every)
	return w
}

// startInotify watches the file's directory and the file, and starts the
// reader.
func (w *fileWatch) startInotify() error {
	if w.opts.noInotify {
		return errors.New("inotify not used")
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("inotify_init1", err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(w.path), dirEvents); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("inotify_add_watch "+filepath.Dir(w.path), err)
	}
	w.in, w.ifd = os.NewFile(uintptr(fd), "inotify"), fd // non-blocking: netpoll reads it
	w.watchInode()
	w.reading.Add(1)
	go w.read()
	return nil
}

// watchInode puts the file watch on the inode now at path (a rename over it
// brings a new one), dropping the watch on the last. A missing file has no
// watch; the directory's watch sees one appear.
func (w *fileWatch) watchInode() {
	if w.in == nil {
		return
	}
	wd, err := unix.InotifyAddWatch(w.ifd, w.path, fileEvents)
	if err != nil {
		wd = -1
	}
	if w.fileWD >= 0 && w.fileWD != wd {
		unix.InotifyRmWatch(w.ifd, uint32(w.fileWD)) // gone with its inode, or an old one
	}
	w.fileWD = wd
}

// read turns the events that concern the file into kicks for the loop,
// until the inotify instance is closed.
func (w *fileWatch) read() {
	defer w.reading.Done()
	base := filepath.Base(w.path)
	buf := make([]byte, 4096)
	for {
		n, err := w.in.Read(buf)
		if err != nil {
			return
		}
		if concerns(buf[:n], base) {
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}
}

// concerns reports whether a read of inotify events holds one about the
// file: any event of the file's own watch, a directory event for its name,
// or a lost queue (anything may have happened).
func concerns(b []byte, base string) bool {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			return true // not expected from the kernel: check rather than guess
		}
		name := b[unix.SizeofInotifyEvent:end]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		switch {
		case ev.Mask&unix.IN_Q_OVERFLOW != 0:
			return true
		case ev.Len == 0 && ev.Mask&unix.IN_IGNORED == 0: // the file's watch
			return true
		case ev.Len > 0 && string(name) == base:
			return true
		}
		b = b[end:]
	}
	return false
}

// loop runs the checks: settle after a kick, at least gap apart, and every
// `every` regardless.
func (w *fileWatch) loop(every time.Duration) {
	defer w.looping.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	pending := false
	var last time.Time
	run := func() {
		w.check()
		w.watchInode() // the check, or the writer, may have replaced the file
		last = time.Now()
	}
	for {
		select {
		case <-w.done:
			return
		case <-w.changed:
			if !pending {
				pending = true
				settle.Reset(max(w.opts.settle, w.opts.gap-time.Since(last)))
			}
		case <-settle.C:
			pending = false
			run()
		case <-tick.C:
			if !pending {
				run()
			}
		}
	}
}

// stop ends the goroutines and waits for them; check is not running once it
// returns.
func (w *fileWatch) stop() {
	close(w.done)
	w.looping.Wait()
	if w.in != nil {
		w.in.Close() // ends read
	}
	w.reading.Wait()
}
