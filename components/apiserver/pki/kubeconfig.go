package pki

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Names inside the kubeconfig WriteKubeconfig writes.
const (
	// KubeconfigCluster names the cluster entry.
	KubeconfigCluster = "kiln"
	// KubeconfigContext names the context, which is also the current one.
	KubeconfigContext = "kiln"
)

// WriteKubeconfig writes a kubeconfig to path (mode 0600, atomically, its
// directory created 0700 if needed) with cluster "kiln" at serverURL trusting
// caPEM, a user entry named user authenticating with the bearer token, and
// context "kiln" joining them as the current context. serverURL must be
// https. An existing file is replaced.
func WriteKubeconfig(path, serverURL string, caPEM []byte, user, token string) error {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("kubeconfig: server URL %q: want https://HOST[:PORT]", serverURL)
	}
	if _, err := ParseCertPEM(caPEM); err != nil {
		return fmt.Errorf("kubeconfig: certificate authority: %w", err)
	}
	if user == "" {
		return errors.New("kubeconfig: user is required")
	}
	if token == "" {
		return errors.New("kubeconfig: token is required")
	}
	cfg := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{
			KubeconfigCluster: {Server: serverURL, CertificateAuthorityData: caPEM},
		},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{
			user: {Token: token},
		},
		Contexts: map[string]*clientcmdapi.Context{
			KubeconfigContext: {Cluster: KubeconfigCluster, AuthInfo: user},
		},
		CurrentContext: KubeconfigContext,
	}
	data, err := clientcmd.Write(cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig: encode: %w", err)
	}
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return err
	}
	return WriteFileAtomic(path, data, secretMode)
}
