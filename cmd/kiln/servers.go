package main

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/config"
)

// serversTimeout bounds the datastore read behind one join answer.
const serversTimeout = 2 * time.Second

// registerServer lists this server's URL in the datastore while it runs,
// so that servers sharing the datastore hand agents every server's address
// (knownServers) and agents can fail over. A server on a loopback or
// wildcard address has no URL agents could use, and is not listed.
func registerServer(ctx context.Context, g *errgroup.Group, cfg *config.Config, st *store.Store) {
	for _, url := range advertisedServers(cfg.APIListen) {
		g.Go(func() error { return st.RegisterServer(ctx, url, 0) })
	}
}

// knownServers is every server URL registered in the datastore, or this
// server's own when the datastore cannot say (not ready yet, or an error:
// a join still succeeds, with the URL the agent used).
func knownServers(st *store.Store, listen string) []string {
	select {
	case <-st.Ready():
	default:
		return advertisedServers(listen)
	}
	ctx, cancel := context.WithTimeout(context.Background(), serversTimeout)
	defer cancel()
	urls, err := st.Servers(ctx)
	if err != nil || len(urls) == 0 {
		return advertisedServers(listen)
	}
	return urls
}
