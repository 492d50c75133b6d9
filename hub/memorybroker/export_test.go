package memorybroker

// Streams returns how many rooms the broker keeps state for.
func (b *Broker) Streams() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.streams)
}

// WorkerOf returns the index of the delivery goroutine of a room or user.
func (b *Broker) WorkerOf(name string) int {
	w := b.workerFor(name)
	for i := range b.workers {
		if &b.workers[i] == w {
			return i
		}
	}
	return -1
}
