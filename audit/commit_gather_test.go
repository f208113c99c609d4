package audit

import (
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// batchSizes records how many records each write made durable.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) Synced(_ time.Duration, recs []Record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, len(recs))
}
func (*batchSizes) MirrorDropped() {}
func (*batchSizes) Failed(error)   {}

// Callers that are ready together share one write and one fsync: the
// first one's hand-off wakes the committer ahead of the others, which
// must not each pay an fsync of their own. On one core the order is
// deterministic: the callers are ready, in the run queue, when the first
// hands its record over.
func TestCallersReadyTogetherShareOneFsync(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	obs := &batchSizes{}
	l, err := OpenWith(filepath.Join(t.TempDir(), "audit.jsonl"), Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(Record{Event: NetworkCreate, Outcome: OK}); err != nil { // the file is open
		t.Fatal(err)
	}
	const callers = 8
	var wg sync.WaitGroup
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Append(Record{Event: EndpointJoin, Outcome: OK}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.sizes) != 2 || obs.sizes[1] != callers {
		t.Errorf("records per write: %v, want [1 %d]: the %d callers ready together share one fsync", obs.sizes, callers, callers)
	}
}
