package hub_test

import (
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
)

func TestMemoryBroker(t *testing.T) {
	hubtest.TestBroker(t, func(t *testing.T) (hub.Broker, hub.Presence) {
		b := hub.NewMemoryBroker(hub.MemoryConfig{HistorySize: hubtest.HistorySize})
		return b, hub.NewMemoryPresence(b)
	})
}

func TestMemoryRecovery(t *testing.T) {
	hubtest.TestRecovery(t, func(t *testing.T) (hub.Broker, hub.Presence) {
		b := hub.NewMemoryBroker(hub.MemoryConfig{HistorySize: hubtest.HistorySize})
		return b, hub.NewMemoryPresence(b)
	})
}
