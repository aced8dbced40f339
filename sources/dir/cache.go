package dir

import (
	"path"
	"time"
)

// racyWindow is how long after a file's last change its stat is not
// trusted to tell a later change apart (git's "racily clean" entries):
// the kernel stamps ctime from a coarse clock (one tick, up to 10 ms), and
// network filesystems stamp it from the server's, so a write landing in
// the same tick as the read before it may leave every stat field as it
// was. A file changed less than racyWindow before a read is read again by
// the next one. fsnotify names such writes anyway; this covers whatever
// it cannot see.
const racyWindow = 2 * time.Second

// cache is what one complete read kept of the regular files it read, so
// that the next read re-reads only files that may have changed (issue 3:
// re-reading all of a 1,000-file tree cost 13 ms per change). Listing
// directories stays a full walk: it is cheap, and it is what finds new,
// renamed and deleted files and enforces the limits exactly as before.
// A cache belongs to one goroutine.
type cache struct {
	files map[string]cachedFile // by slash path relative to the root
	// dirty holds slash paths fsnotify named since the read that built
	// files: those paths, and everything below them, are re-read whatever
	// their stat says.
	dirty map[string]struct{}
	// reused counts the files the read that built this cache took from
	// its predecessor instead of reading them.
	reused int
}

// cachedFile is one regular file as a read found it.
type cachedFile struct {
	st   fileStat
	data []byte
	// trusted is false when the file changed within racyWindow of the
	// read, so that an equal stat proves nothing.
	trusted bool
}

func newCache() *cache {
	return &cache{files: map[string]cachedFile{}, dirty: map[string]struct{}{}}
}

// markDirty records that fsnotify named p (slash, relative to the root).
func (c *cache) markDirty(p string) { c.dirty[p] = struct{}{} }

// reuse returns what c kept of p if st shows it unchanged.
func (c *cache) reuse(p string, st fileStat) (cachedFile, bool) {
	f, ok := c.files[p]
	if !ok || !f.trusted || f.st != st {
		return cachedFile{}, false
	}
	for q := p; ; q = path.Dir(q) {
		if _, ok := c.dirty[q]; ok {
			return cachedFile{}, false
		}
		if q == "." || q == "/" {
			return f, true
		}
	}
}

// keep records p as read by a read that started at start.
func (c *cache) keep(p string, st fileStat, data []byte, start time.Time) {
	c.files[p] = cachedFile{
		st:      st,
		data:    data,
		trusted: st.changedAt() < start.Add(-racyWindow).UnixNano(),
	}
}
