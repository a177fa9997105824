package wal

import "github.com/podkit/podkit/workqueue/store"

// BreakItemState sets the state field of item id without moving the item
// between its queue's heaps, as a bug in the store would: the tests' way
// to reach the internal-inconsistency path.
func BreakItemState(s *Store, id uint64, st store.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.items[id].state = st
}

// RewindNextID makes the next enqueue reuse an id, as a bug would.
func RewindNextID(s *Store, id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.nextID = id
}
