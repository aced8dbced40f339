package containerd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestContainerArgs(t *testing.T) {
	for _, tc := range []struct {
		name                           string
		command, args, entrypoint, cmd []string
		want                           []string
		wantErr                        bool
	}{
		{name: "image only", entrypoint: []string{"/e"}, cmd: []string{"c"}, want: []string{"/e", "c"}},
		{name: "args replace cmd", args: []string{"a"}, entrypoint: []string{"/e"}, cmd: []string{"c"}, want: []string{"/e", "a"}},
		{name: "command drops entrypoint and cmd", command: []string{"/x"}, entrypoint: []string{"/e"}, cmd: []string{"c"}, want: []string{"/x"}},
		{name: "command and args", command: []string{"/x"}, args: []string{"a"}, entrypoint: []string{"/e"}, cmd: []string{"c"}, want: []string{"/x", "a"}},
		{name: "cmd without entrypoint", cmd: []string{"/c", "1"}, want: []string{"/c", "1"}},
		{name: "empty entrypoint string", entrypoint: []string{""}, cmd: []string{"/c"}, want: []string{"/c"}},
		{name: "nothing", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := containerArgs(tc.command, tc.args, tc.entrypoint, tc.cmd)
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Fatalf("containerArgs = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestCopyLines_criFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := &criWriter{f: f}
	long := strings.Repeat("x", maxLogLine+10)
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("one\ntw"))
		pw.Write([]byte("o\n\n" + long + "\nlast"))
		pw.Close()
	}()
	before := time.Now().Add(-time.Second)
	copyLines("stderr", pr, w)
	f.Close()
	es, err := readLog(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []logEntry{
		{stream: "stderr", tag: "F", text: "one"},
		{stream: "stderr", tag: "F", text: "two"},
		{stream: "stderr", tag: "F", text: ""},
		{stream: "stderr", tag: "P", text: long[:maxLogLine]},
		{stream: "stderr", tag: "F", text: long[maxLogLine:]},
		{stream: "stderr", tag: "F", text: "last"},
	}
	if len(es) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(es), len(want), es)
	}
	for i := range want {
		if es[i].stream != want[i].stream || es[i].tag != want[i].tag || es[i].text != want[i].text || es[i].time.Before(before) {
			t.Fatalf("entry %d = %+v, want %+v", i, es[i], want[i])
		}
	}
}

// TestCriWriter_rotates: past the size limit the log moves aside and a
// new file starts; only maxFiles files are kept, every entry stays whole
// and the newest lines are in the current file.
func TestCriWriter_rotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	const maxSize, maxFiles, lines = 1024, 3, 200
	w := &criWriter{f: f, path: path, maxSize: maxSize, maxFiles: maxFiles}
	var in strings.Builder
	for i := range lines {
		fmt.Fprintf(&in, "line %03d of the container's chatter\n", i)
	}
	copyLines("stdout", strings.NewReader(in.String()), w)
	w.close()

	next := -1
	for _, text := range readRotated(t, path, maxSize, maxFiles) {
		var n int
		if _, err := fmt.Sscanf(text, "line %d of", &n); err != nil {
			t.Fatalf("broken entry %q", text)
		}
		if next >= 0 && n != next {
			t.Fatalf("line %d after %d: lines lost or out of order across files", n, next-1)
		}
		next = n + 1
	}
	if next != lines {
		t.Fatalf("the current file ends at line %d, want the last, %d", next-1, lines-1)
	}
}

// readRotated checks that the log at path and its rotated files are
// maxFiles files of at most maxSize bytes holding whole stdout entries,
// and returns their texts, oldest first.
func readRotated(t *testing.T, path string, maxSize int64, maxFiles int) []string {
	t.Helper()
	files, _ := filepath.Glob(path + "*")
	if len(files) != maxFiles {
		t.Fatalf("log files %q, want %d", files, maxFiles)
	}
	slices.Sort(files)
	files = append(files[1:], files[0]) // the rotated ones oldest first, then the current one
	var texts []string
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxSize {
			t.Fatalf("%s is %d bytes, over the %d limit", f, st.Size(), maxSize)
		}
		es, err := readLog(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, e := range es {
			if e.tag != "F" || e.stream != "stdout" {
				t.Fatalf("%s: entry %+v cut by the rotation", f, e)
			}
			texts = append(texts, e.text)
		}
	}
	return texts
}

func TestConfig_defaults(t *testing.T) {
	short := Config{RootDir: "/var/lib/kiln"}
	if err := short.setDefaults(); err != nil {
		t.Fatal(err)
	}
	p := short.paths()
	if p.address != "/var/lib/kiln/containerd/containerd.sock" || short.ImagesDir != "/var/lib/kiln/images" ||
		short.Namespace != DefaultNamespace || short.BridgeName != DefaultBridgeName ||
		short.CNIConfDir != "/var/lib/kiln/containerd/cni/net.d" || short.ClusterCIDR != DefaultClusterCIDR {
		t.Fatalf("defaults: %+v %+v", short, p)
	}
	deep := Config{RootDir: "/tmp/" + strings.Repeat("d", 100)}
	if err := deep.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if a := deep.paths().address; len(a) > 100 || !strings.HasPrefix(a, "/run/kiln/") {
		t.Fatalf("socket path for a deep root: %q", a)
	}
	ext := Config{RootDir: "/x", Endpoint: "unix:///run/containerd/containerd.sock"}
	if err := ext.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if a := ext.paths().address; a != "/run/containerd/containerd.sock" {
		t.Fatalf("endpoint address %q", a)
	}
	for _, bad := range []Config{{}, {RootDir: "/x", BridgeName: "a-bridge-name-too-long"}, {RootDir: "/x", NodeIP: "nope"}, {RootDir: "/x", Namespace: "no/slash"},
		{RootDir: "/x", ClusterCIDR: "10.42.0.0"}, {RootDir: "/x", ClusterCIDR: "fd00::/64"}} {
		if err := bad.setDefaults(); err == nil {
			t.Fatalf("setDefaults(%+v) accepted", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 20; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p := Percentile(ds, 50); p != 10*time.Millisecond {
		t.Fatalf("p50 = %s", p)
	}
	if p := Percentile(ds, 99); p != 20*time.Millisecond {
		t.Fatalf("p99 = %s", p)
	}
	if p := Percentile(nil, 50); p != 0 {
		t.Fatalf("p50 of none = %s", p)
	}
}
