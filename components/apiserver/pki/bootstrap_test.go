package pki

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testBootstrap(t *testing.T) (Bootstrap, *CA) {
	t.Helper()
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	return Bootstrap{CACertPEM: ca.CertPEM, CAKeyPEM: keyPEM, AdminToken: "admin-token", JoinSecret: "join-secret-0123456789"}, ca
}

func TestSealBootstrap_roundTrip(t *testing.T) {
	b, _ := testBootstrap(t)
	data, err := SealBootstrap(b.JoinSecret, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{b.JoinSecret, b.AdminToken, string(b.CAKeyPEM)} {
		if bytes.Contains(data, []byte(secret)) {
			t.Fatalf("sealed data contains a secret in clear")
		}
	}
	got, err := OpenBootstrap(b.JoinSecret, data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.CACertPEM, b.CACertPEM) || !bytes.Equal(got.CAKeyPEM, b.CAKeyPEM) || got.AdminToken != b.AdminToken || got.JoinSecret != b.JoinSecret {
		t.Errorf("OpenBootstrap = %+v, want %+v", got, b)
	}
	again, err := SealBootstrap(b.JoinSecret, b)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again, data) {
		t.Error("two seals are identical: salt or nonce is not random")
	}
}

func TestOpenBootstrap_wrongSecret(t *testing.T) {
	b, _ := testBootstrap(t)
	data, err := SealBootstrap(b.JoinSecret, b)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenBootstrap("another-secret-0123456789", data)
	if !errors.Is(err, ErrBootstrapSecret) {
		t.Fatalf("OpenBootstrap with a wrong secret = %v, want ErrBootstrapSecret", err)
	}
	if !strings.Contains(err.Error(), "cannot be decrypted with this token") {
		t.Errorf("error %q does not say what is wrong", err)
	}
	// A flipped ciphertext byte is refused the same way.
	tampered := bytes.Replace(data, []byte(`"ciphertext":"`), []byte(`"ciphertext":"A`), 1)
	if _, err := OpenBootstrap(b.JoinSecret, tampered); err == nil {
		t.Error("OpenBootstrap accepted altered data")
	}
	if _, err := OpenBootstrap(b.JoinSecret, []byte("not json")); err == nil || errors.Is(err, ErrBootstrapSecret) {
		t.Errorf("OpenBootstrap of garbage = %v, want a format error", err)
	}
}

func TestInstallCA(t *testing.T) {
	b, ca := testBootstrap(t)
	t.Run("empty dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "tls")
		if err := InstallCA(dir, b.CACertPEM, b.CAKeyPEM); err != nil {
			t.Fatal(err)
		}
		got, err := EnsureCA(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got.Hash() != ca.Hash() {
			t.Errorf("installed CA hash %s, want %s", got.Hash(), ca.Hash())
		}
		if m := fileMode(t, filepath.Join(dir, CAKeyFile)); m != 0o600 {
			t.Errorf("ca.key mode %v, want 0600", m)
		}
		// Installing the same CA again is a no-op.
		if err := InstallCA(dir, b.CACertPEM, b.CAKeyPEM); err != nil {
			t.Errorf("second InstallCA: %v", err)
		}
	})
	t.Run("different CA present", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := EnsureCA(dir); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(filepath.Join(dir, CACertFile))
		err := InstallCA(dir, b.CACertPEM, b.CAKeyPEM)
		if err == nil || !strings.Contains(err.Error(), "holds a different CA") {
			t.Fatalf("InstallCA over another CA = %v, want a refusal", err)
		}
		after, _ := os.ReadFile(filepath.Join(dir, CACertFile))
		if !bytes.Equal(before, after) {
			t.Error("InstallCA replaced the existing CA")
		}
	})
	t.Run("mismatched pair", func(t *testing.T) {
		other, _ := testBootstrap(t)
		if err := InstallCA(t.TempDir(), b.CACertPEM, other.CAKeyPEM); err == nil {
			t.Error("InstallCA accepted a key that does not match the certificate")
		}
	})
}

func TestWriteToken(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tls", "admin.token")
	if _, err := EnsureToken(p); err != nil {
		t.Fatal(err)
	}
	if err := WriteToken(p, "shared-token"); err != nil {
		t.Fatal(err)
	}
	got, err := EnsureToken(p)
	if err != nil || got != "shared-token" {
		t.Errorf("EnsureToken after WriteToken = %q, %v", got, err)
	}
	if m := fileMode(t, p); m != 0o600 {
		t.Errorf("token mode %v, want 0600", m)
	}
}
