package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseBinaryPages hands back to the kernel the pages of kiln's own
// executable (code and read-only data) and keeps only those it touches
// from then on. Called once a server or an agent is up: package
// initialisers of every dependency, start-up and the first syncs have
// run code and read type data spread over the whole 160 MB binary, and
// with the kernel's read-ahead and fault-around (64 KiB around each
// fault) most of it stays mapped: 80 MiB of an agent's 90 MiB RSS,
// although what the steady state runs is a tenth of that.
//
// So: MADV_RANDOM turns off read-ahead on the mappings, MADV_PAGEOUT
// unmaps what is mapped now, and POSIX_FADV_DONTNEED drops the file's
// pages that no process maps from the page cache, so that fault-around
// finds nothing to map beside the page asked for. Code run again is read
// back from the file page by page, as at the first exec. Pages kiln wrote
// (relocations) are anonymous and MADV_PAGEOUT keeps them without swap.
// Errors are ignored: this only saves memory.
func releaseBinaryPages() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "start-end perms offset dev inode path"
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || (fields[1] != "r-xp" && fields[1] != "r--p") {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		for _, advice := range []int{unix.MADV_RANDOM, unix.MADV_PAGEOUT} {
			_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), uintptr(advice))
		}
	}
	if ef, err := os.Open(exe); err == nil {
		_ = unix.Fadvise(int(ef.Fd()), 0, 0, unix.FADV_DONTNEED)
		ef.Close()
	}
}
