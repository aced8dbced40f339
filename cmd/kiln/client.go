package main

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"kiln.dev/kiln/config"
)

// clientTimeout bounds each API request of the client commands, so an
// unreachable server is an error (exit 2), not a hang in CI.
const clientTimeout = 30 * time.Second

// clientFlags are how `kiln status` and `kiln diff` find the API server.
type clientFlags struct {
	kubeconfig string
	dataDir    string
}

func (f *clientFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig to use (default: $KUBECONFIG, else "+config.DefaultDataDir+"/admin.kubeconfig)")
	fs.StringVar(&f.dataDir, "data-dir", "", "use the admin.kubeconfig of kiln's data directory DIR")
}

// restConfig loads the kubeconfig: --kubeconfig, else --data-dir's
// admin.kubeconfig when the flag is given, else $KUBECONFIG, else the
// default data dir's admin.kubeconfig.
func (f *clientFlags) restConfig() (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{}
	switch env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); {
	case f.kubeconfig != "":
		rules.ExplicitPath = f.kubeconfig
	case f.dataDir != "":
		rules.ExplicitPath = filepath.Join(f.dataDir, "admin.kubeconfig")
	case env != "":
		rules.Precedence = filepath.SplitList(env)
	default:
		rules.ExplicitPath = filepath.Join(config.DefaultDataDir, "admin.kubeconfig")
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no kubeconfig: pass --kubeconfig or --data-dir, or set KUBECONFIG")
		}
		return nil, err
	}
	rc.Timeout = clientTimeout
	return rc, nil
}
