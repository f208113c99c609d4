package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostpass/hostpass/hostview"
)

// genLog writes n join records, each with a four-link host view (a typical
// line of about 700 bytes), on a tmpfs when the machine has /dev/shm, where
// fsync is free: the benchmarks time reading, not writing.
func genLog(b *testing.B, n int, sealKey string) []string {
	b.Helper()
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "hostpass-bench")
		if err == nil {
			dir = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	path := filepath.Join(dir, "audit.jsonl")
	l, err := OpenWith(path, Options{MaxSize: 64 << 20, SealKey: sealKey})
	if err != nil {
		b.Fatal(err)
	}
	host := []hostview.Interface{
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
					HostInterfaces: host})
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

// BenchmarkVerify1M verifies a 1,000,000-record log (about 700 MB, rotated
// at 64 MiB). One iteration is one whole log.
func BenchmarkVerify1M(b *testing.B) {
	files := genLog(b, 1_000_000, "")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sum, err := Verify(files, VerifyOptions{})
		if err != nil || sum.Records != 1_000_000 {
			b.Fatal(sum, err)
		}
	}
}
