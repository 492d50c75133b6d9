package redisbroker

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{NodeID: "node 1"},
		{PresenceTTL: time.Millisecond},
		{URL: "http://localhost"},
	} {
		if _, err := New(cfg, zerolog.Nop()); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	b, err := New(Config{}, zerolog.Nop())
	if err != nil {
		t.Fatalf("New with the zero Config: %v", err)
	}
	if b.NodeID() == "" || b.cfg.KeyPrefix != "sb:" || b.cfg.HistorySize != 100 {
		t.Errorf("defaults not applied: %+v", b.cfg)
	}
	b.Close(t.Context())
}
