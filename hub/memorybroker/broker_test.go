package memorybroker_test

import (
	"testing"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/hub/hubtest"
	"github.com/switchboard-chat/switchboard/hub/memorybroker"
)

func TestMemoryBroker(t *testing.T) {
	hubtest.TestBroker(t, func(t *testing.T) (hub.Broker, hub.Presence) {
		b := memorybroker.New(memorybroker.Config{HistorySize: hubtest.HistorySize})
		return b, memorybroker.NewPresence(b)
	})
}

func TestMemoryRecovery(t *testing.T) {
	hubtest.TestRecovery(t, func(t *testing.T) (hub.Broker, hub.Presence) {
		b := memorybroker.New(memorybroker.Config{HistorySize: hubtest.HistorySize})
		return b, memorybroker.NewPresence(b)
	})
}
