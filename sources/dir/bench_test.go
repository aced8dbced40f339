//go:build linux

package dir

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkReadTree_oneChange reads a tree of 1,000 files of 600 bytes
// (reconcile's BenchmarkSyncDirLatency tree) after a one-file change,
// with the previous read's cache, and compares it with a full read of the
// same tree. It prints the medians of 20 reads each.
func BenchmarkReadTree_oneChange(b *testing.B) {
	const files, reads = 1000, 20
	root := b.TempDir()
	for i := range files {
		content := strings.Repeat(fmt.Sprintf("settings-%04d: initial\n", i), 25)
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("settings-%04d.yaml", i)), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	lim := defaultLimits()

	b.ResetTimer()
	full := make([]time.Duration, reads)
	for i := range full {
		start := time.Now()
		if _, _, err := readTreeCached(b.Context(), r, lim, nil, nil); err != nil {
			b.Fatal(err)
		}
		full[i] = time.Since(start)
	}
	_, c, err := readTreeCached(b.Context(), r, lim, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	// As if the tree had been written more than racyWindow ago, as a
	// tree edited by a person is.
	for p, f := range c.files {
		f.trusted = true
		c.files[p] = f
	}
	inc := make([]time.Duration, reads)
	for i := range inc {
		name := fmt.Sprintf("settings-%04d.yaml", (i*389)%files)
		if err := os.WriteFile(filepath.Join(root, name), []byte(fmt.Sprintf("change-%d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		_, next, err := readTreeCached(b.Context(), r, lim, nil, c)
		inc[i] = time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		// Files changed within racyWindow are read again: at most the
		// ones this loop changed.
		if next.reused < files-i-1 {
			b.Fatalf("read %d: reused %d files, want at least %d", i, next.reused, files-i-1)
		}
		c = next
	}
	b.StopTimer()

	slices.Sort(full)
	slices.Sort(inc)
	f, n := full[reads/2], inc[reads/2]
	b.Logf("full read: min %v, p50 %v; incremental: min %v, p50 %v", full[0], f, inc[0], n)
	fmt.Printf("BENCH dir-reread-1000 %.2f ms %.2f vs full-read\n", float64(n)/1e6, float64(n)/float64(f))
}
