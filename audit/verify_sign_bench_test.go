package audit

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	signedMillion     []string
	signedMillionPub  *handLog
	signedMillionOnce sync.Once
)

// genSignedMillion writes, once, a signed log of 1,000,000 join records
// laid out as the daemon writes them: a checkpoint every 1,000 records and
// an epoch every 1,000 (its checkpoint and audit.epoch), each join about
// as long as genLog's (IDs of 64 hex digits, a host_view).
func genSignedMillion(b *testing.B) ([]string, *handLog) {
	signedMillionOnce.Do(func() {
		genMillion(b) // for its folder, removed by TestMain; and the baseline
		path := filepath.Join(millionDir, "signed.jsonl")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		l := newHandLog(b)
		l.out = bufio.NewWriterSize(f, 1<<20)
		l.checkpoint(CheckpointStart)
		view := fmt.Sprintf("%064x", 42)
		l.add(Record{Event: HostView, Outcome: OK, HostView: view, HostInterfaces: []Interface{
			{Name: "lo", Index: 1, MTU: 65536, Up: true, Addrs: []string{"127.0.0.1/8", "::1/128"}},
			{Name: "eth0", Index: 2, MAC: "52:54:00:12:34:56", MTU: 1500, Up: true, Addrs: []string{"192.0.2.10/24", "fe80::5054:ff:fe12:3456/64"}},
		}})
		for i := 0; i < 1_000_000; i++ {
			l.add(Record{Event: EndpointJoin, Outcome: OK, Driver: "hostpass",
				NetworkID:  "3f1c0d9e8b7a69584736251403f2e1d0c9b8a79685746352413f2e1d0c9b8a7",
				EndpointID: fmt.Sprintf("%064x", i), SandboxKey: "/var/run/docker/netns/4c1d2e3f4a5b", Tag: "payments", HostView: view})
			switch {
			case (i+1)%1000 == 0:
				l.stepEpoch() // its checkpoint is the 1,000-record one
			}
		}
		l.checkpoint(CheckpointStop)
		if err := l.out.Flush(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		signedMillion, signedMillionPub = []string{path}, l
	})
	return signedMillion, signedMillionPub
}

// BenchmarkVerifySigned1M verifies the signed log of 1,000,000 records
// with FILE.pub (chain, 1,000 certifications, 1,001 checkpoints against the
// tree built as it goes), and, for the baseline in the same run, without
// it (chain only) and the plain log of BenchmarkVerify1M.
func BenchmarkVerifySigned1M(b *testing.B) {
	files, l := genSignedMillion(b)
	b.Run("pubkey", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			sum, err := Verify(files, VerifyOptions{Pub: l.pub()})
			if err != nil || sum.KeyCerts != 1000 || sum.Checkpoints != 1002 || !sum.RootsChecked {
				b.Fatal(sum, err)
			}
		}
	})
	b.Run("pubkey+checkpoints", func(b *testing.B) {
		// Every checkpoint of the log, collected off the host.
		cs, err := ReadCheckpoints(files[0])
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sum, err := Verify(files, VerifyOptions{Pub: l.pub(), Checkpoints: cs})
			if err != nil || sum.Collected != len(cs) {
				b.Fatal(sum, err)
			}
		}
	})
	b.Run("chain-only", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := Verify(files, VerifyOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain-baseline", func(b *testing.B) {
		plain := genMillion(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := Verify(plain, VerifyOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifySigned1MPaired runs, in each iteration, the plain
// baseline, verify --pubkey and verify --pubkey with every checkpoint
// collected, one after the other, so that a machine shared with other work
// loads them alike; it reports each one's seconds and the ratios.
func BenchmarkVerifySigned1MPaired(b *testing.B) {
	files, l := genSignedMillion(b)
	plain := genMillion(b)
	cs, err := ReadCheckpoints(files[0])
	if err != nil {
		b.Fatal(err)
	}
	var base, pub, coll time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := Verify(plain, VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := Verify(files, VerifyOptions{Pub: l.pub()}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := Verify(files, VerifyOptions{Pub: l.pub(), Checkpoints: cs}); err != nil {
			b.Fatal(err)
		}
		base, pub, coll = base+t1.Sub(t0), pub+t2.Sub(t1), coll+time.Since(t2)
	}
	n := float64(b.N)
	b.ReportMetric(base.Seconds()/n, "plain-s")
	b.ReportMetric(pub.Seconds()/n, "pubkey-s")
	b.ReportMetric(coll.Seconds()/n, "pubkey+1002cp-s")
	b.ReportMetric(pub.Seconds()/base.Seconds(), "pubkey/plain")
}
