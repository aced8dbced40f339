package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
)

// nodePasswordPrefix holds a hash of each joined node's password, outside
// /registry, so no API request can reach it.
const nodePasswordPrefix = "/kiln/node-passwords/"

// ErrNodeNameTaken is returned by ClaimNodePassword when another machine
// holds the node name.
var ErrNodeNameTaken = errors.New("node name is taken by another machine")

// ClaimNodePassword binds a node name to the machine that knows password,
// as k3s's node passwords do: the join token lets any machine join, and
// without this one could join under another node's name and get its
// credentials. The first join of a name records a hash of the password; a
// later join must present the same password, unless the Node object is
// gone (deleting a Node frees its name).
func (s *Store) ClaimNodePassword(ctx context.Context, node, password string) error {
	if password == "" {
		return errors.New("store: empty node password")
	}
	sum := sha256.Sum256([]byte(password))
	key := nodePasswordPrefix + node
	for range 5 { // a lost compare-and-swap means another join raced this one
		cur, err := s.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			if _, err := s.Create(ctx, key, sum[:], WriteOptions{}); !errors.Is(err, ErrExists) {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(cur.Value, sum[:]) == 1 {
			return nil
		}
		if _, err := s.Get(ctx, Key("", "nodes", "", node)); !errors.Is(err, ErrNotFound) {
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: node %q exists and joined with another node password; delete the Node to free its name", ErrNodeNameTaken, node)
		}
		if _, err := s.Update(ctx, key, sum[:], cur.ModRevision, WriteOptions{}); !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("store: node password of %q: too many concurrent joins", node)
}
