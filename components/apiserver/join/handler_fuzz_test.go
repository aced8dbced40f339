package join

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"kiln.dev/kiln/components/apiserver/pki"
)

// FuzzHandler_sign feeds arbitrary join requests to the signer: it never
// panics, and whatever it signs is for a valid node name, as that node.
func FuzzHandler_sign(f *testing.F) {
	ca, err := pki.EnsureCA(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	_, csr, err := pki.NewCSR("x")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("node-a", "10.0.0.1", string(csr), string(csr))
	f.Add("Node_A", "::1", "", string(csr))
	f.Add("a.b", "fe80::1%eth0", string(csr), "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
	h := &handler{cfg: HandlerConfig{CA: ca}}
	f.Fuzz(func(t *testing.T, name, ip, clientCSR, servingCSR string) {
		resp, err := h.sign(Request{NodeName: name, NodeIP: ip, ClientCSR: clientCSR, ServingCSR: servingCSR})
		if err != nil {
			return
		}
		block, _ := pem.Decode([]byte(resp.ClientCert))
		if block == nil {
			t.Fatal("no client certificate PEM")
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject.CommonName != NodeUserPrefix+name || strings.ContainsAny(name, " /:") {
			t.Fatalf("signed %q for node name %q", c.Subject.CommonName, name)
		}
	})
}
