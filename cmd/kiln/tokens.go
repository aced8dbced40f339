package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/apiserver/pki"
)

// readTokenAuthFile reads a static token file in kube-apiserver's
// --token-auth-file format: token,user,uid[,"group1,group2"] per line;
// blank lines and lines starting with # are skipped. Errors name the file
// and line, never a token.
func readTokenAuthFile(path string) (map[string]apiserver.User, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenAuthFile: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.Comment = '#'
	users := map[string]apiserver.User{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			var perr *csv.ParseError
			if errors.As(err, &perr) {
				return nil, fmt.Errorf("tokenAuthFile %s: line %d: %v", path, perr.Line, perr.Err)
			}
			return nil, fmt.Errorf("tokenAuthFile %s: %w", path, err)
		}
		if len(rec) < 3 {
			return nil, fmt.Errorf("tokenAuthFile %s: line %d: want token,user,uid[,\"groups\"], got %d fields", path, line, len(rec))
		}
		token, name, uid := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1]), strings.TrimSpace(rec[2])
		switch {
		case token == "" || !pki.HeaderSafe(token):
			return nil, fmt.Errorf("tokenAuthFile %s: line %d: the token is empty or holds whitespace or non-ASCII characters", path, line)
		case name == "":
			return nil, fmt.Errorf("tokenAuthFile %s: line %d: the user name is empty", path, line)
		}
		if _, dup := users[token]; dup {
			return nil, fmt.Errorf("tokenAuthFile %s: line %d: the token of user %q is given twice", path, line, name)
		}
		u := apiserver.User{Name: name, UID: uid}
		if len(rec) > 3 {
			for _, g := range strings.Split(rec[3], ",") {
				if g = strings.TrimSpace(g); g != "" {
					u.Groups = append(u.Groups, g)
				}
			}
		}
		users[token] = u
	}
	return users, nil
}
