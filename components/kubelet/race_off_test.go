//go:build !race

package kubelet_test

// raceEnabled: the race detector slows everything several times, so the
// scale test runs fewer hollow nodes under it.
const raceEnabled = false
