package git

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// maxCredentialsBytes bounds the credentials file: a token, a
// username:password line or a private key.
const maxCredentialsBytes = 64 << 10

// auth returns the auth method of one fetch and a redactor for the
// secrets it carries. The credentials file is read on every fetch, so a
// rotated token or key applies from the next fetch on.
func (s *Source) auth() (transport.AuthMethod, redactor, error) {
	switch s.ep.Protocol {
	case "http", "https":
		return s.httpAuth()
	case "ssh":
		a, err := s.sshAuth()
		return a, newRedactor(""), err
	default:
		return nil, newRedactor(""), nil
	}
}

func (s *Source) httpAuth() (transport.AuthMethod, redactor, error) {
	// The URL's own userinfo is redacted even when the file is used.
	urlSecrets := []string{s.urlPassword}
	if s.urlPassword == "" {
		// https://<token>@host/...: the user name is the secret.
		urlSecrets = append(urlSecrets, s.urlUser)
	}
	if s.cfg.CredentialsFile == "" {
		rd := newRedactor(s.urlUser, urlSecrets...)
		if s.urlUser == "" && s.urlPassword == "" {
			return nil, rd, nil
		}
		return &githttp.BasicAuth{Username: s.urlUser, Password: s.urlPassword}, rd, nil
	}
	data, err := readCredentials(s.cfg.CredentialsFile)
	if err != nil {
		return nil, newRedactor(s.urlUser, urlSecrets...), err
	}
	line := strings.TrimSpace(string(data))
	user, secret := "git", line
	if i := strings.IndexByte(line, ':'); i >= 0 {
		user, secret = line[:i], line[i+1:]
	}
	rd := newRedactor(user, append(urlSecrets, secret, line)...)
	// The messages below name the file, never its contents.
	switch {
	case line == "":
		return nil, rd, fmt.Errorf("credentials file %s is empty", s.cfg.CredentialsFile)
	case strings.ContainsAny(line, "\r\n"):
		return nil, rd, fmt.Errorf("credentials file %s must hold one line: a token or username:password", s.cfg.CredentialsFile)
	case user == "" || secret == "":
		return nil, rd, fmt.Errorf("credentials file %s: username:password needs both parts", s.cfg.CredentialsFile)
	}
	return &githttp.BasicAuth{Username: user, Password: secret}, rd, nil
}

// sshAuth loads the private key and picks the host key check: the
// known_hosts file beside the key if there is one, else none at all. No
// known_hosts means the first connection is not protected against a
// man in the middle; this is the price of working out of the box with a
// bare deploy key, and Run logs a warning once.
func (s *Source) sshAuth() (transport.AuthMethod, error) {
	data, err := readCredentials(s.cfg.CredentialsFile)
	if err != nil {
		return nil, err
	}
	user := s.ep.User
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeys(user, data, "")
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, fmt.Errorf("ssh key %s is passphrase-protected; that is not supported", s.cfg.CredentialsFile)
		}
		// x/crypto/ssh parse errors describe the format, not the key.
		return nil, fmt.Errorf("ssh key %s: %w", s.cfg.CredentialsFile, err)
	}
	kh := s.knownHostsFile()
	if _, err := os.Stat(kh); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		if !s.warnedHostKey {
			s.warnedHostKey = true
			s.log.Warn("no known_hosts beside the ssh key; accepting any host key", logKeyFile, kh)
		}
		keys.HostKeyCallback = ssh.InsecureIgnoreHostKey()
		return sshKeyAuth{keys}, nil
	}
	db, err := gitssh.NewKnownHostsDb(kh)
	if err != nil {
		return nil, fmt.Errorf("known_hosts %s: %w", kh, err)
	}
	keys.HostKeyCallback = db.HostKeyCallback()
	keys.HostKeyAlgorithms = db.HostKeyAlgorithms(s.sshHostPort())
	return sshKeyAuth{keys}, nil
}

func (s *Source) knownHostsFile() string {
	return filepath.Join(filepath.Dir(s.cfg.CredentialsFile), "known_hosts")
}

// sshHostPort is the address known_hosts entries are matched against.
func (s *Source) sshHostPort() string {
	port := s.ep.Port
	if port <= 0 {
		port = gitssh.DefaultPort
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s.ep.Host, "["), "]")
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func readCredentials(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	if len(data) > maxCredentialsBytes {
		return nil, fmt.Errorf("credentials file %s is over %d bytes", name, maxCredentialsBytes)
	}
	return data, nil
}
