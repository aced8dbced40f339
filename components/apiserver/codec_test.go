package apiserver

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

func TestWantsProtobuf(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"application/vnd.kubernetes.protobuf,application/json", true},
		{"application/vnd.kubernetes.protobuf", true},
		{"application/vnd.kubernetes.protobuf, */*", true},
		{"application/json, application/vnd.kubernetes.protobuf", false},
		{"application/vnd.kubernetes.protobuf;q=0.5, application/json", false},
		{"application/json;q=0.5, application/vnd.kubernetes.protobuf", true},
		{"application/vnd.kubernetes.protobuf;q=0", false},
		{"application/vnd.kubernetes.protobuf;q=x, application/json", false},
		{"application/vnd.kubernetes.protobuf;stream=watch", false},
		{"application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json", false},
		{"application/json", false},
		{"*/*", false},
		{"", false},
		{"application/vnd.kubernetes.protobuf;;;", false},
		{"text/html, application/vnd.kubernetes.protobuf", true},
		{"text/html, application/json, application/vnd.kubernetes.protobuf", false},
	}
	for _, tc := range tests {
		r := &http.Request{Header: http.Header{}}
		if tc.accept != "" {
			r.Header.Set("Accept", tc.accept)
		}
		if got := wantsProtobuf(r); got != tc.want {
			t.Errorf("wantsProtobuf(%q) = %v, want %v", tc.accept, got, tc.want)
		}
	}
}

func TestReadAll_anyDeclaredLength(t *testing.T) {
	body := strings.Repeat("x", 3000)
	for _, declared := range []int64{-1, 0, 1, 2999, 3000, 3001, 1 << 20, maxBodyBytes + 1} {
		for name, r := range map[string]io.Reader{
			"whole":    strings.NewReader(body),
			"one byte": iotest.OneByteReader(strings.NewReader(body)),
		} {
			got, err := readAll(r, declared)
			if err != nil || !bytes.Equal(got, []byte(body)) {
				t.Errorf("declared %d, %s reader: got %d bytes, %v", declared, name, len(got), err)
			}
		}
	}
	if _, err := readAll(iotest.ErrReader(io.ErrUnexpectedEOF), 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read error: got %v", err)
	}
}
