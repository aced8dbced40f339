package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// BootstrapKey holds what servers sharing an external datastore must
// agree on before they serve (the sealed CA and tokens). It lies outside
// /registry, so no API request can reach it.
const BootstrapKey = "/kiln/bootstrap"

// bootstrapTimeout bounds the whole exchange: an external cluster that
// does not answer in this time fails the start with a clear error.
const bootstrapTimeout = 30 * time.Second

// Bootstrap returns the value at BootstrapKey in the external datastore.
// When the key is absent it calls create and stores its result with a
// create-if-absent transaction; if another server stored one first, that
// one is returned instead, so all servers end up with the same value.
//
// It may be called before Run (it dials its own short-lived client), which
// is when it is needed: the CA it carries must be in place before the API
// server's certificates are made. With an embedded etcd there is no one to
// share with, and it returns ErrNotFound.
func (s *Store) Bootstrap(ctx context.Context, create func() ([]byte, error)) ([]byte, error) {
	if len(s.cfg.Endpoints) == 0 {
		return nil, ErrNotFound
	}
	tlsCfg, err := s.cfg.clientTLS()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, bootstrapTimeout)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   s.cfg.Endpoints,
		DialTimeout: 10 * time.Second,
		TLS:         tlsCfg,
		Logger:      zap.NewNop(),
		Context:     ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("store: connect %v: %w", s.cfg.Endpoints, err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, BootstrapKey)
	if err != nil {
		return nil, fmt.Errorf("store: read bootstrap data from %v: %w", s.cfg.Endpoints, err)
	}
	if len(resp.Kvs) > 0 {
		return resp.Kvs[0].Value, nil
	}
	value, err := create()
	if err != nil {
		return nil, err
	}
	if len(value) == 0 {
		return nil, errors.New("store: empty bootstrap data")
	}
	txn, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(BootstrapKey), "=", 0)).
		Then(clientv3.OpPut(BootstrapKey, string(value))).
		Else(clientv3.OpGet(BootstrapKey)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("store: write bootstrap data: %w", err)
	}
	if txn.Succeeded {
		return value, nil
	}
	// Another server won the race between our Get and our Txn.
	kvs := txn.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, errors.New("store: bootstrap data vanished while being written")
	}
	return kvs[0].Value, nil
}
