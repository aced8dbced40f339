package nodeipam

import "testing"

func TestAllocator(t *testing.T) {
	a, err := newAllocator("10.42.0.0/22", 24)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.mark("x", "10.42.1.0/24"); !ok {
		t.Fatal("10.42.1.0/24 not in range")
	}
	if _, ok := a.mark("y", "10.43.0.0/24"); ok {
		t.Fatal("10.43.0.0/24 marked as in range")
	}
	for _, want := range []string{"10.42.0.0/24", "10.42.2.0/24", "10.42.3.0/24"} {
		if got, ok := a.allocate("n-" + want); !ok || got != want {
			t.Fatalf("allocate: %s %v, want %s", got, ok, want)
		}
	}
	if got, ok := a.allocate("z"); ok {
		t.Fatalf("allocated %s from a full range", got)
	}
	if c, _ := a.mark("w", "10.42.1.0/24"); len(c) != 1 || c[0] != "x" {
		t.Fatalf("conflicts %v, want [x]", c)
	}
	if !a.release("x") || a.release("x") {
		t.Fatal("release x: want true then false")
	}
	if got, ok := a.allocate("z"); !ok || got != "10.42.1.0/24" {
		t.Fatalf("after release: %s %v", got, ok)
	}
	if got, ok := a.held("z"); !ok || got != "10.42.1.0/24" {
		t.Fatalf("held z: %s %v", got, ok)
	}
	// A wider prefix marks every block it covers.
	b, _ := newAllocator("10.42.0.0/16", 24)
	b.mark("big", "10.42.0.0/23")
	if got, _ := b.allocate("n"); got != "10.42.2.0/24" {
		t.Fatalf("after /23: %s", got)
	}
}
