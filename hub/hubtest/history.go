package hubtest

import (
	"slices"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
)

// samePosition reports whether a and b are the same publication by seq and
// epoch: all a duplicate publish returns.
func samePosition(a, b hub.Publication) bool {
	return a.Seq == b.Seq && a.Epoch == b.Epoch
}

// testHistoryEpoch: a Since query with the room's epoch returns what it
// asks for; with another epoch none, with the room's position.
func testHistoryEpoch(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	var epoch string
	for range 3 {
		epoch = n.publish(t, "he", "m").Epoch
	}
	pos := hub.Position{Seq: 3, Epoch: epoch}
	tests := []struct {
		name string
		q    hub.HistoryQuery
		want []uint64
	}{
		{"its epoch", hub.HistoryQuery{HasSince: true, Since: 1, Epoch: epoch}, []uint64{2, 3}},
		{"no epoch", hub.HistoryQuery{HasSince: true, Since: 1}, []uint64{2, 3}},
		{"other epoch", hub.HistoryQuery{HasSince: true, Since: 1, Epoch: "000000000000"}, nil},
		{"other epoch since 0", hub.HistoryQuery{HasSince: true, Epoch: "000000000000"}, nil},
	}
	for _, tt := range tests {
		page := n.history(t, "he", tt.q)
		if page.Position != pos {
			t.Errorf("%s: position %+v, want %+v", tt.name, page.Position, pos)
		}
		if got := seqs(page.Publications); !slices.Equal(got, tt.want) {
			t.Errorf("%s: seqs %v, want %v", tt.name, got, tt.want)
		}
		if page.Truncated {
			t.Errorf("%s: truncated", tt.name)
		}
	}
}

// testHistoryMaxBytes: MaxBytes caps the summed frame sizes of an answer:
// a Limit query returns the newest publications that fit, at least one; a
// Since query stops before the first that does not fit and says so.
func testHistoryMaxBytes(t *testing.T, newBroker NewBroker) {
	n := startNode(t, newBroker)
	var size int // every frame of the room has this size
	for range 6 {
		size = len(n.publish(t, "hb", "m").Frame)
	}
	tests := []struct {
		name      string
		q         hub.HistoryQuery
		want      []uint64
		truncated bool
	}{
		{"Limit, room for 2", hub.HistoryQuery{Limit: 5, MaxBytes: 2*size + 1}, []uint64{5, 6}, false},
		{"Limit, room for all", hub.HistoryQuery{Limit: 3, MaxBytes: 10 * size}, []uint64{4, 5, 6}, false},
		{"Limit, room for none", hub.HistoryQuery{Limit: 5, MaxBytes: 1}, []uint64{6}, false},
		{"Limit Before, room for 2", hub.HistoryQuery{Limit: 5, Before: 5, MaxBytes: 2 * size}, []uint64{3, 4}, false},
		{"Since, room for 2", hub.HistoryQuery{HasSince: true, Since: 1, MaxBytes: 3*size - 1}, []uint64{2, 3}, true},
		{"Since, room for all", hub.HistoryQuery{HasSince: true, Since: 3, MaxBytes: 3 * size}, []uint64{4, 5, 6}, false},
		{"Since, room for none", hub.HistoryQuery{HasSince: true, Since: 3, MaxBytes: 1}, nil, true},
	}
	for _, tt := range tests {
		page := n.history(t, "hb", tt.q)
		if got := seqs(page.Publications); !slices.Equal(got, tt.want) || page.Truncated != tt.truncated {
			t.Errorf("%s: seqs %v, truncated %v; want %v, %v", tt.name, got, page.Truncated, tt.want, tt.truncated)
		}
		if page.Position.Seq != 6 {
			t.Errorf("%s: position %+v, want seq 6", tt.name, page.Position)
		}
	}
}
