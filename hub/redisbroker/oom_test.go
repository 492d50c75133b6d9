package redisbroker

import (
	"errors"
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestFullRedis: with maxmemory reached under maxmemory-policy noeviction
// (README, "Redis memory"), a publish or a keyed direct message fails with
// ErrUnavailable, not ErrMaybeDelivered, and neither stores nor sends
// anything; reads still work.
func TestFullRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, rec := startBroker(t, srv, Config{})
	ctx := t.Context()
	if err := b.SubscribeUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	first := mustPublish(t, b, "r")
	admin := srv.Client(t)
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", "1"}} {
		if err := admin.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatalf("CONFIG SET %s: %v", kv[0], err)
		}
	}
	_, _, err := b.Publish(ctx, "r", msg(t, "r"))
	if !errors.Is(err, hub.ErrUnavailable) || errors.Is(err, hub.ErrMaybeDelivered) {
		t.Errorf("Publish into a full Redis = %v, want ErrUnavailable and not ErrMaybeDelivered", err)
	}
	dm := hub.Event{Kind: hub.EventFrame, Frame: []byte(`{"type":"dm"}`)}
	_, _, err = b.SendUser(ctx, "bob", dm, "k")
	if !errors.Is(err, hub.ErrUnavailable) || errors.Is(err, hub.ErrMaybeDelivered) {
		t.Errorf("SendUser with a key into a full Redis = %v, want ErrUnavailable and not ErrMaybeDelivered", err)
	}
	page, err := b.History(ctx, "r", hub.HistoryQuery{Limit: 10})
	if err != nil {
		t.Fatalf("History of a full Redis: %v", err)
	}
	if got := seqs(page.Publications); len(got) != 1 || page.Position != (hub.Position{Seq: 1, Epoch: first.Epoch}) {
		t.Errorf("history %v at %+v, want only seq 1", got, page.Position)
	}

	if err := admin.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	marker := hub.Event{Kind: hub.EventFrame, Frame: []byte(`{"type":"marker"}`)}
	if _, _, err := b.SendUser(ctx, "bob", marker, ""); err != nil {
		t.Fatal(err)
	}
	rec.Wait(t, "the marker", func() bool { return len(rec.UserEvents("bob")) > 0 })
	if got := rec.UserEvents("bob"); len(got) != 1 {
		t.Errorf("bob got %d events, want only the marker: the refused one was sent", len(got))
	}
}
