// Package config owns kiln.yaml, the appliance's configuration file: its Go
// schema, the defaults, validation, and the command-line flags that override
// it. It only describes configuration; cmd/kiln turns a validated Config into
// the Configs of each component (store, apiserver, kubelet, proxy, sources…).
//
// Every field has a flag equivalent and flags win, but only flags the user
// actually set: an unset flag never overrides the file.
//
//	cfg := &config.Config{}
//	flags := cfg.BindFlags(cmd.Flags()) // before parsing
//	// ... after parsing:
//	if path != "" {
//		if cfg, err = config.Load(path); err != nil {
//			return err
//		}
//	}
//	if err := flags.Apply(cmd.Flags(), cfg); err != nil {
//		return err
//	}
//	cfg.SetDefaults()
//	if err := cfg.Validate(); err != nil {
//		return fmt.Errorf("%s: %w", path, err)
//	}
//
// An example file with every field and its default is config/kiln.yaml.
package config
