package memorybroker

// Streams returns how many rooms the broker keeps state for.
func (b *Broker) Streams() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.streams)
}
