package pki_test

import (
	"fmt"
	"os"
	"path/filepath"

	"kiln.dev/kiln/components/apiserver/pki"
)

func Example() {
	dataDir, err := os.MkdirTemp("", "kiln-pki-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = os.RemoveAll(dataDir) }()
	tlsDir := filepath.Join(dataDir, "tls")

	ca, err := pki.EnsureCA(tlsDir)
	if err != nil {
		fmt.Println(err)
		return
	}
	cert, err := ca.EnsureServing(tlsDir, "apiserver", []string{"127.0.0.1", "localhost"})
	if err != nil {
		fmt.Println(err)
		return
	}
	token, err := pki.EnsureToken(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		fmt.Println(err)
		return
	}
	err = pki.WriteKubeconfig(filepath.Join(dataDir, "admin.kubeconfig"), "https://127.0.0.1:6443", ca.CertPEM, "admin", token)
	fmt.Println(cert.Leaf.IPAddresses, cert.Leaf.DNSNames, len(token), err)
	// Output: [127.0.0.1] [localhost] 64 <nil>
}
