package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// serversPrefix holds one key per running API server, its URL, under a
// lease the server keeps alive: the list agents are given to fail over
// between, as kube-apiserver keeps /registry/masterleases/.
const serversPrefix = "/kiln/servers/"

// apiEndpointsPrefix holds one key per API server that pods can reach,
// its ip:port, under a lease like serversPrefix's.
const apiEndpointsPrefix = "/kiln/apiendpoints/"

// DefaultServerTTL is how long a server stays listed after it stops
// renewing (it died without deregistering).
const DefaultServerTTL = 15 * time.Second

// RegisterServer lists url among the running servers (Servers) until ctx
// is done, then removes it. The entry lives under a lease of ttl (0 means
// DefaultServerTTL) that is kept alive while this process runs, so a
// server that dies drops out of the list by itself within ttl. A lost
// lease (the datastore was unreachable for longer than ttl) is granted
// again. It blocks; call it after Ready. It returns nil when ctx ends.
func (s *Store) RegisterServer(ctx context.Context, url string, ttl time.Duration) error {
	return s.register(ctx, serversPrefix, url, ttl)
}

// RegisterAPIEndpoint lists addr (ip:port), where pods reach this
// server's API, until ctx is done, as RegisterServer lists URLs: the
// kubernetes Service's endpoints are the addresses listed
// (APIEndpoints). A server whose API only pods cannot reach (on
// loopback) lists nothing.
func (s *Store) RegisterAPIEndpoint(ctx context.Context, addr string, ttl time.Duration) error {
	return s.register(ctx, apiEndpointsPrefix, addr, ttl)
}

// register keeps prefix+value under a lease of ttl while ctx lasts.
func (s *Store) register(ctx context.Context, prefix, value string, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = DefaultServerTTL
	}
	cli := s.Client()
	key := prefix + value
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for ctx.Err() == nil {
		if err := s.keepListed(ctx, cli, key, value, ttl); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("server registration lost; registering again", "key", key, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-retry.C:
		}
	}
	// Deregister on a clean stop, so agents and pods stop trying this
	// server at once rather than after ttl.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, _ = cli.Delete(dctx, key)
	return nil
}

// keepListed puts key under a fresh lease and keeps the lease alive until
// ctx ends or the lease is lost.
func (s *Store) keepListed(ctx context.Context, cli *clientv3.Client, key, value string, ttl time.Duration) error {
	grant, err := cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return fmt.Errorf("grant: %w", mapErr(err))
	}
	if _, err := cli.Put(ctx, key, value, clientv3.WithLease(grant.ID)); err != nil {
		return fmt.Errorf("put: %w", mapErr(err))
	}
	alive, err := cli.KeepAlive(ctx, grant.ID)
	if err != nil {
		return fmt.Errorf("keepalive: %w", mapErr(err))
	}
	for range alive {
	}
	// The channel closes when ctx ends or the lease cannot be renewed.
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("lease %x expired", grant.ID)
}

// Servers returns the URLs of the servers currently registered with
// RegisterServer, sorted.
func (s *Store) Servers(ctx context.Context) ([]string, error) {
	return s.registered(ctx, serversPrefix)
}

// APIEndpoints returns the addresses registered with RegisterAPIEndpoint,
// sorted.
func (s *Store) APIEndpoints(ctx context.Context) ([]string, error) {
	return s.registered(ctx, apiEndpointsPrefix)
}

func (s *Store) registered(ctx context.Context, prefix string) ([]string, error) {
	resp, err := s.kvAPI().Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, mapErr(err)
	}
	values := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		values = append(values, strings.TrimPrefix(string(kv.Key), prefix))
	}
	slices.Sort(values)
	return values, nil
}
