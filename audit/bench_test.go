package audit

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// genLog writes n join records to dir, each with a four-link host view (a
// typical line of about 900 bytes).
func genLog(b *testing.B, dir string, n int, sealKey string) []string {
	b.Helper()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := OpenWith(path, Options{MaxSize: 64 << 20, SealKey: sealKey})
	if err != nil {
		b.Fatal(err)
	}
	host := []Interface{
		{Name: "lo", Index: 1, MTU: 65536, Up: true, Addrs: []string{"127.0.0.1/8", "::1/128"}},
		{Name: "eth0", Index: 2, MAC: "52:54:00:12:34:56", MTU: 1500, Up: true, Addrs: []string{"192.0.2.10/24", "fe80::5054:ff:fe12:3456/64"}},
		{Name: "docker0", Index: 3, MAC: "02:42:0c:62:27:c9", MTU: 1500, Up: true, Addrs: []string{"172.17.0.1/16"}},
		{Name: "docker_gwbridge", Index: 4, MAC: "02:42:9a:1b:2c:3d", MTU: 1500, Up: true, Addrs: []string{"172.18.0.1/16"}},
	}
	now := time.Now().UTC()
	errs := make(chan error, 64)
	for w := 0; w < 64; w++ { // concurrent writers share commits
		go func(w int) {
			for i := w; i < n; i += 64 {
				errs <- l.Append(Record{Time: now, Event: EndpointJoin, Outcome: OK, Driver: "hostpass", Host: "node1",
					NetworkID:  "3f1c0d9e8b7a69584736251403f2e1d0c9b8a79685746352413f2e1d0c9b8a7",
					EndpointID: fmt.Sprintf("%064x", i), SandboxKey: "/var/run/docker/netns/4c1d2e3f4a5b", Tag: "payments",
					View: host})
			}
		}(w)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	files, err := Files(path)
	if err != nil {
		b.Fatal(err)
	}
	return files
}

var (
	million     []string
	millionDir  string
	millionOnce sync.Once
)

// genMillion writes the 1,000,000-record log once for all benchmarks, on a
// tmpfs where the machine has one; TestMain removes it.
func genMillion(b *testing.B) []string {
	millionOnce.Do(func() {
		var err error
		if millionDir, err = os.MkdirTemp("/dev/shm", "hostpass-bench"); err != nil {
			if millionDir, err = os.MkdirTemp("", "hostpass-bench"); err != nil {
				b.Fatal(err)
			}
		}
		million = genLog(b, millionDir, 1_000_000, "")
	})
	return million
}

func TestMain(m *testing.M) {
	code := m.Run()
	if millionDir != "" {
		os.RemoveAll(millionDir)
	}
	os.Exit(code)
}

// BenchmarkVerify1M verifies a 1,000,000-record log (about 900 MB, rotated
// at 64 MiB). One iteration is one whole log.
func BenchmarkVerify1M(b *testing.B) {
	files := genMillion(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sum, err := Verify(files, VerifyOptions{})
		// 1,000,000 joins, and the host.view that opens each rotated file.
		if err != nil || sum.Records < 1_000_000 || sum.Records > 1_000_000+sum.Files {
			b.Fatal(sum, err)
		}
	}
}

// BenchmarkShow1M finds the records of one endpoint in the same log: what
// `hostpass audit show --endpoint ID` does.
func BenchmarkShow1M(b *testing.B) {
	files := genMillion(b)
	want := fmt.Sprintf("%064x", 765432)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		err := Query(files, Filter{Endpoint: want}, func(*Entry, []byte) error { n++; return nil })
		if err != nil || n != 1 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkAppendGroupCommit: 64 callers append join records at once, as
// concurrent `docker run`s do; they share writes and fsyncs. One op is one
// record made durable.
func BenchmarkAppendGroupCommit(b *testing.B) {
	l, err := OpenWith(filepath.Join(b.TempDir(), "audit.jsonl"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rec := Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, Driver: "hostpass", Host: "node1",
		NetworkID: "3f1c0d9e8b7a69584736251403f2e1d0c9b8a79685746352413f2e1d0c9b8a7", EndpointID: fmt.Sprintf("%064x", 1)}
	b.SetParallelism(32) // 64 callers on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// noSyncFile is a log file whose fsync does nothing: the benchmarks below
// measure the committer's own work per record (hand-off, encoding, chain,
// write, waking the caller), which a real fsync would hide.
type noSyncFile struct{ logFile }

func (noSyncFile) Sync() error { return nil }

// joinRecord is a typical join, as the driver hands it to the log.
func joinRecord(i int) Record {
	return Record{Time: time.Now().UTC(), Event: EndpointJoin, Outcome: OK, Driver: "hostpass", Host: "node1",
		NetworkID: "3f1c0d9e8b7a69584736251403f2e1d0c9b8a79685746352413f2e1d0c9b8a7", EndpointID: fmt.Sprintf("%064x", i),
		SandboxKey: "/var/run/docker/netns/4c1d2e3f4a5b", Sandbox: SandboxLive, Internal: Flag(false), Adopted: Flag(false),
		View: []Interface{
			{Name: "lo", Index: 1, MTU: 65536, Up: true, Addrs: []string{"127.0.0.1/8", "::1/128"}},
			{Name: "eth0", Index: 2, MAC: "52:54:00:12:34:56", MTU: 1500, Up: true, Addrs: []string{"192.0.2.10/24"}},
		}}
}

// benchCommitter runs callers goroutines appending joins to a log whose
// fsync does nothing. One op is one record written.
func benchCommitter(b *testing.B, callers int, o Options) {
	orig := openLogFile
	openLogFile = func(path string) (logFile, error) {
		f, err := orig(path)
		if err != nil {
			return nil, err
		}
		return noSyncFile{f}, nil
	}
	defer func() { openLogFile = orig }()
	l, err := OpenWith(filepath.Join(b.TempDir(), "audit.jsonl"), o)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N / callers
	for c := 0; c < callers; c++ {
		n := per
		if c == 0 {
			n += b.N % callers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if err := l.Append(joinRecord(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkCommitter1(b *testing.B)  { benchCommitter(b, 1, Options{}) }
func BenchmarkCommitter16(b *testing.B) { benchCommitter(b, 16, Options{}) }

// countSyncs counts fsyncs and the records they made durable.
type countSyncs struct{ syncs, recs, nanos atomic.Int64 }

func (c *countSyncs) Synced(took time.Duration, recs []Record) {
	c.syncs.Add(1)
	c.recs.Add(int64(len(recs)))
	c.nanos.Add(int64(took))
}
func (*countSyncs) MirrorDropped() {}
func (*countSyncs) Failed(error)   {}

// think burns about the CPU a request costs the daemon outside the log
// (HTTP, JSON, the driver), so that callers arrive as a daemon's handlers
// do: a few at a time, each after some work, not all at once.
func think() {
	var sum [32]byte
	buf := make([]byte, 4096)
	for i := 0; i < 8; i++ {
		sum = sha256.Sum256(append(buf[:0], sum[:]...))
	}
}

// BenchmarkAppendDisk: callers append joins, each after some work of its
// own, to a log on the disk ($HOSTPASS_BENCH_DIR, else /var/tmp: not a
// tmpfs), every record fsynced before Append returns. One op is one record.
// It reports the records each fsync made durable.
func BenchmarkAppendDisk1(b *testing.B)  { benchDisk(b, 1) }
func BenchmarkAppendDisk16(b *testing.B) { benchDisk(b, 16) }

func benchDisk(b *testing.B, callers int) {
	dir := os.Getenv("HOSTPASS_BENCH_DIR")
	if dir == "" {
		dir = "/var/tmp"
	}
	dir, err := os.MkdirTemp(dir, "hostpass-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	obs := &countSyncs{}
	l, err := OpenWith(filepath.Join(dir, "audit.jsonl"), Options{Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N / callers
	for c := 0; c < callers; c++ {
		n := per
		if c == 0 {
			n += b.N % callers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				think()
				if err := l.Append(joinRecord(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if s := obs.syncs.Load(); s > 0 {
		b.ReportMetric(float64(obs.recs.Load())/float64(s), "records/fsync")
		b.ReportMetric(float64(obs.nanos.Load())/float64(s)/1e3, "µs/fsync")
	}
}
