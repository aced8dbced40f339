package config_test

import (
	"fmt"

	"github.com/spf13/pflag"

	"kiln.dev/kiln/config"
)

func ExampleParseSourceFlag() {
	s, err := config.ParseSourceFlag("git:https://example.com/org/repo.git#main//deploy/prod")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Name, s.Kind, s.URL, s.Ref, s.Subpath)

	_, err = config.ParseSourceFlag("svn:https://example.com/repo")
	fmt.Println(err)
	// Output:
	// repo git https://example.com/org/repo.git main deploy/prod
	// --source "svn:https://example.com/repo": want dir:PATH, git:URL[#REF][//SUBPATH] or hosted:NAME
}

func ExampleFlags_Apply() {
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	var cfg config.Config
	flags := cfg.BindFlags(fs)
	_ = fs.Parse([]string{"--api-listen", "0.0.0.0:6443", "--source", "dir:./manifests"})

	// Normally cfg comes from config.Load; flags the user did not set leave
	// it alone.
	cfg.DataDir = "/srv/kiln"
	if err := flags.Apply(fs, &cfg); err != nil {
		fmt.Println(err)
		return
	}
	cfg.NodeName = "node-1" // otherwise the host name
	cfg.SetDefaults()
	fmt.Println(cfg.DataDir, cfg.APIListen, cfg.Sources[0].Name, cfg.Validate())
	// Output: /srv/kiln 0.0.0.0:6443 manifests <nil>
}
