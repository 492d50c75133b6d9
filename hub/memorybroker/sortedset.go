package memorybroker

import (
	"slices"
	"sort"
)

// chunkMax is the most names a chunk of a sortedSet holds before it splits.
const chunkMax = 256

// sortedSet is a set of names kept sorted, in chunks of at most chunkMax,
// so that adding, removing and finding where a page starts cost
// O(log N + chunkMax) comparisons and moves, not the O(N) of one sorted
// slice: a room of 100 000 members moves a few hundred names per join.
// Its zero value is empty and ready; it is not safe for concurrent use.
type sortedSet struct {
	// chunks are non-empty and sorted, each one's names below the next's.
	chunks [][]string
	n      int
}

// len returns the number of names in the set.
func (z *sortedSet) len() int { return z.n }

// chunk returns the index of the chunk where name is or belongs: the first
// whose last name is not below it, or the last chunk.
func (z *sortedSet) chunk(name string) int {
	i := sort.Search(len(z.chunks), func(i int) bool {
		c := z.chunks[i]
		return c[len(c)-1] >= name
	})
	return min(i, len(z.chunks)-1)
}

// add adds name and reports whether it was not in the set.
func (z *sortedSet) add(name string) bool {
	if len(z.chunks) == 0 {
		z.chunks = [][]string{{name}}
		z.n = 1
		return true
	}
	i := z.chunk(name)
	c := z.chunks[i]
	j, found := slices.BinarySearch(c, name)
	if found {
		return false
	}
	c = slices.Insert(c, j, name)
	if len(c) > chunkMax {
		half := len(c) / 2
		right := slices.Clone(c[half:])
		clear(c[half:]) // let the moved names' left copies go
		c = c[:half]
		z.chunks = slices.Insert(z.chunks, i+1, right)
	}
	z.chunks[i] = c
	z.n++
	return true
}

// remove removes name and reports whether it was in the set. A chunk left
// small is merged into the next when both fit in one.
func (z *sortedSet) remove(name string) bool {
	if len(z.chunks) == 0 {
		return false
	}
	i := z.chunk(name)
	c := z.chunks[i]
	j, found := slices.BinarySearch(c, name)
	if !found {
		return false
	}
	c = slices.Delete(c, j, j+1)
	z.n--
	switch {
	case len(c) == 0:
		z.chunks = slices.Delete(z.chunks, i, i+1)
	case len(c) < chunkMax/4 && i+1 < len(z.chunks) && len(c)+len(z.chunks[i+1]) <= chunkMax/2:
		z.chunks[i] = append(c, z.chunks[i+1]...)
		z.chunks = slices.Delete(z.chunks, i+1, i+2)
	default:
		z.chunks[i] = c
	}
	return true
}

// page returns up to limit names sorted after after ("" for the first),
// and whether more follow.
func (z *sortedSet) page(after string, limit int) (names []string, more bool) {
	i, j := 0, 0
	if after != "" && len(z.chunks) > 0 {
		i = z.chunk(after)
		j, _ = slices.BinarySearch(z.chunks[i], after)
		if j < len(z.chunks[i]) && z.chunks[i][j] == after {
			j++
		}
	}
	names = make([]string, 0, min(limit, z.n))
	for ; i < len(z.chunks); i, j = i+1, 0 {
		for _, name := range z.chunks[i][j:] {
			if len(names) == limit {
				return names, true
			}
			names = append(names, name)
		}
	}
	return names, false
}
