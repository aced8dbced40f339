package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// agentSettle is how long after ready the agent's RSS is read.
const agentSettle = 5 * time.Second

// BenchmarkAgentJoin times `kiln agent`, on a fresh data dir in a network
// namespace of its own, from exec to its Node Ready (polled every 10 ms
// through the server), and then reads the agent process's resident set
// size: the agent alone, not the containerd it starts (a process of its
// own).
func BenchmarkAgentJoin(b *testing.B) {
	c := startAgentCluster(b, "agb")
	// The agent runs from a copy of the binary: on its own machine it
	// shares no page of it with a server, and a page two processes map
	// counts in both RSS and is not released by releaseBinaryPages.
	c.bin = copyBinary(b, c.bin)
	host := c.network.AddHost(b, "b1")
	a := c.startAgent(b, host, "--server", c.url, "--token", c.token, "--node-name", "bench-1",
		"--data-dir", filepath.Join(b.TempDir(), "agent"), "--bridge-name", "kiln-b1")
	c.waitNodeReadyEvery(b, a, "bench-1", 10*time.Millisecond)
	join := time.Since(a.start)
	pid := a.cmd.Process.Pid
	readyRSS, err := benchProcStatusKiB(pid, "VmRSS")
	if err != nil {
		b.Fatal(err)
	}
	// The steady state: the agent has logged ready (and released its
	// start-up pages) and run for a few seconds of leases and status.
	waitLog(b, a, "kiln agent ready")
	time.Sleep(agentSettle)
	rss, err := benchProcStatusKiB(pid, "VmRSS")
	if err != nil {
		b.Fatal(err)
	}
	hwm, _ := benchProcStatusKiB(pid, "VmHWM")
	anon, _ := benchProcStatusKiB(pid, "RssAnon")
	file, _ := benchProcStatusKiB(pid, "RssFile")
	fmt.Printf("agent-rss: VmRSS %d KiB at Node Ready; %s later: VmRSS %d KiB (anonymous %d, file %d), VmHWM %d KiB\n",
		readyRSS, agentSettle, rss, anon, file, hwm)
	fmt.Printf("BENCH agent-join %.3f s\n", join.Seconds())
	fmt.Printf("BENCH agent-rss %.1f MiB\n", float64(rss)/1024)
}

// copyBinary copies the executable at path into a temporary directory.
func copyBinary(b *testing.B, path string) string {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	dst := filepath.Join(b.TempDir(), "kiln")
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		b.Fatal(err)
	}
	// Written back, as an installed binary is: the kernel keeps dirty
	// pages in the page cache whatever the agent advises, and would map
	// them around every page the agent touches (releaseBinaryPages).
	if _, err := f.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return dst
}
