package git

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshServer is an ssh server on loopback that runs git upload-pack for
// one client key, as a git host does.
type sshServer struct {
	t       *testing.T
	git     string
	home    string
	config  *ssh.ServerConfig
	hostKey ssh.PublicKey
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func newSSHServer(t *testing.T, client ssh.PublicKey) *sshServer {
	t.Helper()
	s := &sshServer{t: t, git: requireGit(t), home: t.TempDir()}
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	host, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	s.hostKey = host.PublicKey()
	s.config = &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() == "git" && bytes.Equal(k.Marshal(), client.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	s.config.AddHostKey(host)
	if s.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		s.ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *sshServer) addr() string { return s.ln.Addr().String() }

func (s *sshServer) serve(c net.Conn) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ssh.DiscardRequests(reqs)
	}()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(ch, creqs)
		}()
	}
}

// session runs "git-upload-pack '<path>'" and nothing else.
func (s *sshServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		var exe struct{ Command string }
		if req.Type != "exec" || ssh.Unmarshal(req.Payload, &exe) != nil || !strings.HasPrefix(exe.Command, "git-upload-pack '") {
			_ = req.Reply(false, nil)
			continue
		}
		_ = req.Reply(true, nil)
		path := strings.TrimSuffix(strings.TrimPrefix(exe.Command, "git-upload-pack '"), "'")
		cmd := exec.Command(s.git, "upload-pack", path)
		cmd.Env = gitEnv(s.home)
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		stdin, err := cmd.StdinPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err == nil {
			go func() {
				_, _ = io.Copy(stdin, ch)
				stdin.Close()
			}()
			err = cmd.Wait()
		}
		status := uint32(0)
		if err != nil {
			status = 1
		}
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

// keyFile writes a new ed25519 private key into a fresh directory and
// returns the file and the public key.
func keyFile(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p, sp
}

func writeKnownHosts(t *testing.T, keyPath, addr string, key ssh.PublicKey) {
	t.Helper()
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	if err := os.WriteFile(filepath.Join(filepath.Dir(keyPath), "known_hosts"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSource_Run_ssh(t *testing.T) {
	r := newRepo(t, t.TempDir(), "main")
	r.write(map[string]string{"a.yaml": "a\n"})
	first := r.commit("first")
	key, pub := keyFile(t)
	srv := newSSHServer(t, pub)
	url := "ssh://git@" + srv.addr() + r.bare
	const warning = "accepting any host key"

	t.Run("known_hosts", func(t *testing.T) {
		writeKnownHosts(t, key, srv.addr(), srv.hostKey)
		defer os.Remove(filepath.Join(filepath.Dir(key), "known_hosts"))
		src := start(t, Config{URL: url, CredentialsFile: key, Interval: time.Hour})
		if snap := src.snapshot(t); snap.Revision != "main@sha1:"+first {
			t.Fatalf("Revision = %s", snap.Revision)
		}
		r.write(map[string]string{"b.yaml": "b\n"})
		second := r.commit("second")
		src.Trigger()
		if snap := src.snapshot(t); snap.Commit.Hash != second || len(snap.Files) != 2 {
			t.Fatalf("after trigger: %s %v", snap.Revision, fileMap(snap))
		}
		src.stop()
		if strings.Contains(src.logs.String(), warning) {
			t.Error("warned about host keys although known_hosts pins them")
		}
	})
	t.Run("no known_hosts", func(t *testing.T) {
		src := start(t, Config{URL: url, CredentialsFile: key, Interval: time.Hour})
		src.snapshot(t)
		src.stop()
		if got := strings.Count(src.logs.String(), warning); got != 1 {
			t.Errorf("host key warning logged %d times, want once", got)
		}
	})
	t.Run("wrong host key", func(t *testing.T) {
		_, other := keyFile(t)
		writeKnownHosts(t, key, srv.addr(), other)
		defer os.Remove(filepath.Join(filepath.Dir(key), "known_hosts"))
		src := start(t, Config{URL: url, CredentialsFile: key, Interval: time.Hour})
		err := src.failure(t)
		mustIs(t, err, ErrFetch)
		if !strings.Contains(err.Error(), "knownhosts") {
			t.Errorf("error %q does not say the host key did not match", err)
		}
	})
	t.Run("unknown client key", func(t *testing.T) {
		other, _ := keyFile(t)
		src := start(t, Config{URL: url, CredentialsFile: other, Interval: time.Hour})
		mustIs(t, src.failure(t), ErrFetch)
	})
	t.Run("not a key", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(bad, []byte("not-a-key-canary"), 0o600); err != nil {
			t.Fatal(err)
		}
		src := start(t, Config{URL: url, CredentialsFile: bad, Interval: time.Hour})
		err := src.failure(t)
		if strings.Contains(err.Error(), "canary") {
			t.Errorf("error %q shows the key file's contents", err)
		}
	})
}
