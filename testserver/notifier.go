package testserver

import "sync"

// notifier wakes every goroutine waiting for the next change of some state.
// The zero notifier is ready to use.
//
// A waiter takes the channel first, then reads the state, then waits on the
// channel if the state is not yet what it wants: a change made after the
// read closes the channel it holds, so no change is missed.
type notifier struct {
	mu sync.Mutex    // guards ch
	ch chan struct{} // closed by the next notify; nil until someone waits
}

// wait returns a channel closed at the next call of notify.
func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// notify wakes the current waiters.
func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
