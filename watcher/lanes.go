package watcher

import "sync"

// lanes runs work off the goroutine that reads Docker's events: at most n
// pieces of work at once, one at a time per key (a container ID), in the
// order they were added for that key. add never waits, so the reader keeps
// reading however slow an inspect or a stop is.
type lanes struct {
	n int

	// mu guards running, queued and ready.
	mu      sync.Mutex
	running int                 // goroutines draining lanes
	queued  map[string][]func() // key → work not started; a key is present while its lane is busy or ready
	ready   []string            // keys with work and no goroutine, oldest first
	waiting int                 // pieces of work added and not finished
	idle    *sync.Cond          // signalled when waiting drops to 0
}

func newLanes(n int) *lanes {
	l := &lanes{n: n, queued: map[string][]func(){}}
	l.idle = sync.NewCond(&l.mu)
	return l
}

// add queues f behind the earlier work for key.
func (l *lanes) add(key string, f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiting++
	q, busy := l.queued[key]
	l.queued[key] = append(q, f)
	if busy {
		return
	}
	if l.running < l.n {
		l.running++
		go l.drain(key)
		return
	}
	l.ready = append(l.ready, key)
}

// drain runs the work of key one piece at a time, then takes the next
// ready lane. Between two pieces it lets a ready lane go first, so that one
// busy container cannot starve the others.
func (l *lanes) drain(key string) {
	l.mu.Lock()
	for {
		if q := l.queued[key]; len(q) > 0 {
			f := q[0]
			l.queued[key] = q[1:]
			l.mu.Unlock()
			f()
			l.mu.Lock()
			if l.waiting--; l.waiting == 0 {
				l.idle.Broadcast()
			}
			if len(l.queued[key]) > 0 && len(l.ready) > 0 {
				l.ready = append(l.ready, key)
				key, l.ready = l.ready[0], l.ready[1:]
			}
			continue
		}
		delete(l.queued, key)
		if len(l.ready) == 0 {
			l.running--
			l.mu.Unlock()
			return
		}
		key, l.ready = l.ready[0], l.ready[1:]
	}
}

// pending is how much work is added and not finished.
func (l *lanes) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting
}

// wait returns once all work added so far has finished.
func (l *lanes) wait() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.waiting > 0 {
		l.idle.Wait()
	}
}
