// Package hubtest holds the conformance suites every hub.Broker and
// hub.Presence implementation must pass, in the manner of testing/fstest:
// TestBroker for one node, TestCluster for several nodes sharing one backend,
// and TestRecovery for a hub.Hub's joins with since and epoch over a broker.
// It also provides Recorder, a hub.Handler that records what a broker
// delivers and checks the delivery order.
//
// It owns the contract as tests; the contract's prose lives in package hub.
// It is imported only by tests.
package hubtest
