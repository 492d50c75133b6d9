package redisbroker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-chat/switchboard/hub/redisbroker/redistest"
)

// TestSubscriptionStorm: many concurrent joins and leaves leave Redis
// subscribed to exactly the rooms and users still wanted, once each.
func TestSubscriptionStorm(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b, _ := startBroker(t, srv, Config{})
	const workers, rooms, rounds = 16, 4, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			// Each worker owns its rooms and user, as the hub's reference
			// counting makes one caller own a subscription at a time.
			names := make([]string, rooms)
			on := make([]bool, rooms+1) // the last one is the user
			for i := range names {
				names[i] = fmt.Sprintf("w%d.r%d", w, i)
			}
			user := fmt.Sprintf("u%d", w)
			for range rounds {
				i := rand.IntN(rooms + 1)
				stormToggle(t, b, names, user, i, on)
			}
			// End with the even rooms and the even workers' users subscribed.
			for i := range on {
				if on[i] != (i%2 == 0 && (i < rooms || w%2 == 0)) {
					stormToggle(t, b, names, user, i, on)
				}
			}
		})
	}
	wg.Wait()

	var want []string
	for w := range workers {
		for i := 0; i < rooms; i += 2 {
			want = append(want, b.roomChannel(fmt.Sprintf("w%d.r%d", w, i)))
		}
		if w%2 == 0 {
			want = append(want, b.userChannel(fmt.Sprintf("u%d", w)))
		}
	}
	checkChannels(t, srv, b, want)
	nr, nu, pending, waiters := b.subscriptionState()
	if nr != workers*rooms/2 || nu != workers/2 || pending != 0 || waiters != 0 {
		t.Errorf("state: %d rooms, %d users, %d pending, %d waiters", nr, nu, pending, waiters)
	}
}

func stormToggle(t *testing.T, b *Broker, rooms []string, user string, i int, on []bool) {
	ctx := t.Context()
	var err error
	switch {
	case i == len(rooms) && on[i]:
		err = b.UnsubscribeUser(ctx, user)
	case i == len(rooms):
		err = b.SubscribeUser(ctx, user)
	case on[i]:
		err = b.UnsubscribeRoom(ctx, rooms[i])
	default:
		err = b.SubscribeRoom(ctx, rooms[i])
	}
	if err != nil {
		t.Errorf("toggle %d: %v", i, err)
	}
	on[i] = !on[i]
}

// checkChannels checks that Redis has exactly the channels want under b's
// prefix, each with one subscriber.
func checkChannels(t *testing.T, srv *redistest.Server, b *Broker, want []string) {
	t.Helper()
	admin := srv.Client(t)
	got, err := admin.PubSubChannels(t.Context(), globEscape(b.cfg.KeyPrefix)+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("PUBSUB CHANNELS = %q, want %q", got, want)
	}
	if len(want) == 0 {
		return
	}
	counts, err := admin.PubSubNumSub(t.Context(), want...).Result()
	if err != nil {
		t.Fatal(err)
	}
	for c, n := range counts {
		if n != 1 {
			t.Errorf("PUBSUB NUMSUB %s = %d, want 1", c, n)
		}
	}
}

// globEscape escapes the characters special in a Redis glob pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
