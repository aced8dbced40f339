package main

import (
	"os"
	"testing"

	"kiln.dev/kiln/components/testenv"
)

// TestMain removes the kiln binary the tests built once they are done.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinary()
	os.Exit(code)
}
