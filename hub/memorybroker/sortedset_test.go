package memorybroker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortedSet checks the chunked set against a plain sorted slice over a
// random mix of adds and removes large enough to split and merge chunks,
// paging through it from every kind of start.
func TestSortedSet(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var z sortedSet
	var want []string
	for step := range 20000 {
		name := fmt.Sprintf("u%04d", rng.IntN(3000))
		i, found := slices.BinarySearch(want, name)
		if rng.IntN(3) == 0 {
			if got := z.remove(name); got != found {
				t.Fatalf("step %d: remove(%q) = %v, want %v", step, name, got, found)
			}
			if found {
				want = slices.Delete(want, i, i+1)
			}
		} else {
			if got := z.add(name); got != !found {
				t.Fatalf("step %d: add(%q) = %v, want %v", step, name, got, !found)
			}
			if !found {
				want = slices.Insert(want, i, name)
			}
		}
		if z.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, z.len(), len(want))
		}
		if step%997 == 0 {
			checkPages(t, &z, want)
		}
	}
	checkPages(t, &z, want)
	for _, name := range slices.Clone(want) {
		z.remove(name)
	}
	if z.len() != 0 || len(z.chunks) != 0 {
		t.Errorf("emptied set has len %d and %d chunks", z.len(), len(z.chunks))
	}
}

// checkPages pages through z with several page sizes and starts, present
// in the set or not, and compares with want.
func checkPages(t *testing.T, z *sortedSet, want []string) {
	t.Helper()
	for _, limit := range []int{1, 7, 100, 1000} {
		var got []string
		after := ""
		for {
			page, more := z.page(after, limit)
			if len(page) > limit || (more && len(page) < limit) {
				t.Fatalf("page after %q limit %d: %d names, more %v", after, limit, len(page), more)
			}
			got = append(got, page...)
			if !more {
				break
			}
			after = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pages of %d: %d names, want %d", limit, len(got), len(want))
		}
	}
	for _, after := range []string{"u", "u1500x", "u9999", "a"} {
		page, _ := z.page(after, 5)
		i, _ := slices.BinarySearch(want, after)
		if i < len(want) && want[i] == after {
			i++
		}
		if w := want[i:min(i+5, len(want))]; !slices.Equal(page, w) {
			t.Errorf("page after %q = %q, want %q", after, page, w)
		}
	}
}
