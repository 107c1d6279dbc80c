package staging

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestIDSetNeverConflatesIDs(t *testing.T) {
	var s idSet
	s.reset(4)
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

// The open-addressing set says what a Go map of the ids says, for random
// ids, counted ones, ids sharing a half, the all-zero id, across growth
// (a size guess far too small) and a reset.
func TestIDSetMatchesAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var ids [][16]byte
	for i := 0; i < 3000; i++ {
		var id [16]byte
		switch i % 4 {
		case 0:
			binary.BigEndian.PutUint64(id[:8], r.Uint64())
			binary.BigEndian.PutUint64(id[8:], r.Uint64())
		case 1:
			binary.BigEndian.PutUint64(id[8:], uint64(i)) // counted
		case 2:
			binary.BigEndian.PutUint64(id[:8], uint64(i)) // counted, other half
		}
		ids = append(ids, id)
	}
	var s idSet
	s.reset(10)
	for round := 0; round < 2; round++ {
		seen := map[[16]byte]bool{}
		for k := 0; k < 3*len(ids); k++ {
			id := ids[r.IntN(len(ids))]
			if got, want := s.add(id), !seen[id]; got != want {
				t.Fatalf("round %d: add(%x) = %v, want %v", round, id, got, want)
			}
			seen[id] = true
		}
		s.reset(10)
	}
}

// A reset forgets every id, also when it keeps the table.
func TestIDSetResetForgets(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ids := make([][16]byte, 1000)
	for i := range ids {
		binary.BigEndian.PutUint64(ids[i][:8], r.Uint64())
		binary.BigEndian.PutUint64(ids[i][8:], r.Uint64())
	}
	var s idSet
	s.reset(len(ids))
	for round := 0; round < 3; round++ {
		for _, id := range ids {
			if !s.add(id) {
				t.Fatalf("round %d: %x taken for a resend", round, id)
			}
		}
		s.reset(len(ids))
	}
}

// Two ids with the same hash (the same slot and tag) stay two ids: the
// tag only says where to compare.
func TestIDSetComparesIDsBehindEqualTags(t *testing.T) {
	var s idSet
	s.reset(4)
	s.a, s.b = 1, 1 // h = first half + second half
	var x, y [16]byte
	binary.BigEndian.PutUint64(x[:8], 1)
	binary.BigEndian.PutUint64(x[8:], 2)
	binary.BigEndian.PutUint64(y[:8], 2)
	binary.BigEndian.PutUint64(y[8:], 1)
	for _, tt := range []struct {
		id   [16]byte
		want bool
	}{{x, true}, {y, true}, {y, false}, {x, false}} {
		if got := s.add(tt.id); got != tt.want {
			t.Fatalf("add(%x) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
