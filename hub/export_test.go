package hub

// Streams returns how many rooms the broker keeps state for.
func (b *MemoryBroker) Streams() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.streams)
}
