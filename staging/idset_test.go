package staging

import "testing"

func TestIDSetNeverConflatesIDs(t *testing.T) {
	s := newIDSet(4)
	a := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 1}
	b := a
	b[15] = 2 // same first half, different id
	c := b
	c[14] = 9
	for _, tt := range []struct {
		id   [16]byte
		want bool
	}{{a, true}, {a, false}, {b, true}, {b, false}, {c, true}, {a, false}, {c, false}} {
		if got := s.add(tt.id); got != tt.want {
			t.Fatalf("add(%x) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
