package memorybroker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
	"github.com/switchboard-chat/switchboard/protocol"
)

// TestMemoryBrokerReadsKeepNothing: reading the history or position of rooms
// nobody joined or published to keeps no state for them.
func TestMemoryBrokerReadsKeepNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startBroker(t, memorybroker.Config{}, nopHandler{})
	for i := range 200 {
		for _, q := range []hub.HistoryQuery{{}, {Limit: 10}, {HasSince: true, Epoch: "x"}} {
			if _, err := b.History(ctx, fmt.Sprint("unused-", i), q); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := b.Streams(); n != 0 {
		t.Errorf("the broker keeps %d rooms after reads only, want 0", n)
	}
}

// TestMemoryBrokerHistoryBytes: a room's history keeps the newest messages
// within HistoryMaxBytes, and always the newest one.
func TestMemoryBrokerHistoryBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startBroker(t, memorybroker.Config{HistoryMaxBytes: 4096}, nopHandler{})
	publish := func(size int) {
		t.Helper()
		msg, err := protocol.NewMessage("r", "alice", []byte(`"`+strings.Repeat("x", size)+`"`), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.Publish(ctx, "r", hub.PublishRequest{Message: msg}); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		publish(1000)
	}
	page, err := b.History(ctx, "r", hub.HistoryQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range page.Publications {
		n += len(p.Frame)
	}
	if got := pubSeqs(page.Publications); !slices.Equal(got, []uint64{8, 9, 10}) || n > 4096 {
		t.Errorf("history holds seqs %v, %d bytes; want the newest within 4096 bytes, 8..10", got, n)
	}
	publish(5000) // larger than the cap: kept alone
	page, _ = b.History(ctx, "r", hub.HistoryQuery{Limit: 100})
	if got := pubSeqs(page.Publications); !slices.Equal(got, []uint64{11}) {
		t.Errorf("after an oversized message history holds %v, want [11]", got)
	}
}

// TestMemoryBrokerHistoryReadsWithinBudget: a read stops at MaxBytes, and a
// recovery read in another epoch returns nothing.
func TestMemoryBrokerHistoryReadsWithinBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startBroker(t, memorybroker.Config{}, nopHandler{})
	var size int
	for range 10 {
		msg, _ := protocol.NewMessage("r", "alice", []byte(`"`+strings.Repeat("x", 100)+`"`), 0)
		p, _, err := b.Publish(ctx, "r", hub.PublishRequest{Message: msg})
		if err != nil {
			t.Fatal(err)
		}
		size = len(p.Frame)
	}
	page, err := b.History(ctx, "r", hub.HistoryQuery{Limit: 10, MaxBytes: 3*size + 1})
	if err != nil || !slices.Equal(pubSeqs(page.Publications), []uint64{8, 9, 10}) {
		t.Errorf("limit read within 3 frames: %v, %v; want seqs 8..10", pubSeqs(page.Publications), err)
	}
	page, _ = b.History(ctx, "r", hub.HistoryQuery{Limit: 10, MaxBytes: 1})
	if !slices.Equal(pubSeqs(page.Publications), []uint64{10}) {
		t.Errorf("limit read within 1 byte: %v, want the newest alone", pubSeqs(page.Publications))
	}
	cur := page.Position.Epoch
	page, _ = b.History(ctx, "r", hub.HistoryQuery{HasSince: true, Since: 2, Epoch: cur, MaxBytes: 3*size + 1})
	if !slices.Equal(pubSeqs(page.Publications), []uint64{3, 4, 5}) || !page.Truncated {
		t.Errorf("since read within 3 frames: %v truncated %v; want 3..5, truncated", pubSeqs(page.Publications), page.Truncated)
	}
	page, _ = b.History(ctx, "r", hub.HistoryQuery{HasSince: true, Since: 0, Epoch: "another"})
	if len(page.Publications) != 0 || page.Truncated || page.Position.Seq != 10 {
		t.Errorf("since read in another epoch: %v, want no publications at seq 10", pubSeqs(page.Publications))
	}
}

func pubSeqs(pubs []hub.Publication) []uint64 {
	s := make([]uint64, len(pubs))
	for i, p := range pubs {
		s[i] = p.Seq
	}
	return s
}
