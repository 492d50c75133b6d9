package memorybroker

import (
	"fmt"
	"sort"

	"github.com/switchboard-chat/switchboard/hub"
	"github.com/switchboard-chat/switchboard/protocol"
)

// checkTargetLocked checks an edit's or delete's target (see hub.Target)
// against the stream's history. s.mu is held.
func checkTargetLocked(s *memStream, t hub.Target) error {
	if t.Seq == 0 {
		return nil
	}
	i := sort.Search(len(s.ring), func(i int) bool { return s.ring[i].Seq >= t.Seq })
	if i == len(s.ring) || s.ring[i].Seq != t.Seq {
		return fmt.Errorf("publish: %w", hub.ErrNotFound)
	}
	from, ok := protocol.MessageSender(s.ring[i].Frame)
	if _, deleted := s.deleted[t.Seq]; !ok || deleted {
		return fmt.Errorf("publish: %w", hub.ErrNotFound)
	}
	if t.Author != "" && from != t.Author {
		return fmt.Errorf("publish: %w", hub.ErrNotAuthor)
	}
	return nil
}

// markDeletedLocked records a delete's target, and forgets the deleted
// seqs history no longer holds: the set never outgrows the history.
// s.mu is held.
func markDeletedLocked(s *memStream, t hub.Target) {
	if t.Seq == 0 || !t.Delete {
		return
	}
	if s.deleted == nil {
		s.deleted = make(map[uint64]struct{})
	}
	s.deleted[t.Seq] = struct{}{}
	oldest := s.ring[0].Seq
	for seq := range s.deleted {
		if seq < oldest {
			delete(s.deleted, seq)
		}
	}
}
