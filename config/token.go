package config

import "kiln.dev/kiln/components/apiserver/pki"

// JoinSecret is the secret part of Token: the text after "::node:" when
// Token is a whole join token K10<ca hash>::node:<secret>, else Token as
// written. The CA hash in a whole token is for agents, which pin the
// server's CA with it; a server only needs the secret. It is "" when Token
// is empty or invalid (Validate reports that).
func (c *Config) JoinSecret() string {
	if c.Token == "" {
		return ""
	}
	s, err := pki.JoinSecret(c.Token)
	if err != nil {
		return ""
	}
	return s
}
