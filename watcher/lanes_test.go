package watcher

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Work of one key runs in the order added, one at a time; at most n run at
// once; a busy key does not keep the others waiting.
func TestLanesOrderPerKeyAndBound(t *testing.T) {
	const n, keys, each = 4, 20, 50
	l := newLanes(n)
	var running, most atomic.Int32
	var mu sync.Mutex
	seen := map[string][]int{}
	for i := 0; i < each; i++ {
		for k := 0; k < keys; k++ {
			key, i := fmt.Sprint("k", k), i
			l.add(key, func() {
				now := running.Add(1)
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				time.Sleep(50 * time.Microsecond)
				mu.Lock()
				seen[key] = append(seen[key], i)
				mu.Unlock()
				running.Add(-1)
			})
		}
	}
	l.wait()
	if m := most.Load(); m > n {
		t.Errorf("%d ran at once, want at most %d", m, n)
	}
	for k, order := range seen {
		for i, v := range order {
			if v != i {
				t.Fatalf("key %s ran %v, want 0..%d in order", k, order, each-1)
			}
		}
	}
	if len(seen) != keys || l.pending() != 0 {
		t.Errorf("%d keys ran, %d pending, want %d and 0", len(seen), l.pending(), keys)
	}

	block := make(chan struct{})
	l.add("busy", func() { <-block })
	done := make(chan struct{})
	l.add("other", func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("work of another key waited on a busy key")
	}
	close(block)
	l.wait()
}
