package sink

import (
	"crypto/sha256"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostpass/hostpass/audit"
)

// rsyslogMax is rsyslog's default maxMessageSize: it cuts every longer
// message there (and drops the rest).
const rsyslogMax = 8 << 10

var testTime = time.Date(2026, 11, 28, 10, 23, 53, 783962000, time.UTC)

// The message, byte for byte: seq, epoch, prev and hash in one SD-ELEMENT
// between MSGID and the record's line.
func TestFormatExactBytes(t *testing.T) {
	const line = `{"seq":4,"event":"endpoint.join","hash":"5d81"}`
	zero := uint64(0)
	for _, tc := range []struct {
		name   string
		chain  Chain
		stream bool
		want   string
	}{
		{"signed log, datagram", testChain, false,
			`<86>1 2026-11-28T10:23:53.783962Z node-1 hostpass 4242 endpoint.join ` + testSD + ` ` + line},
		{"signed log, octet-counted", testChain, true,
			`295 <86>1 2026-11-28T10:23:53.783962Z node-1 hostpass 4242 endpoint.join ` + testSD + ` ` + line},
		{"plain log: no epoch", Chain{Seq: 1, Prev: audit.Genesis, Hash: testChain.Hash}, false,
			`<86>1 2026-11-28T10:23:53.783962Z node-1 hostpass 4242 endpoint.join [hostpass@32473 seq="1" prev="0000000000000000000000000000000000000000000000000000000000000000" hash="5d81b598858c5ddec07729e0664996b7bbedc8304fc1c228e3551fda3be75291"] ` + line},
		{"epoch 0 is written", Chain{Seq: 1, Epoch: &zero, Prev: "p", Hash: "h"}, false,
			`<86>1 2026-11-28T10:23:53.783962Z node-1 hostpass 4242 endpoint.join [hostpass@32473 seq="1" epoch="0" prev="p" hash="h"] ` + line},
		{"RFC 5424 §6.3.3 escapes", Chain{Seq: 2, Prev: `a"b\c]d`, Hash: ""}, false,
			`<86>1 2026-11-28T10:23:53.783962Z node-1 hostpass 4242 endpoint.join [hostpass@32473 seq="2" prev="a\"b\\c\]d" hash=""] ` + line},
	} {
		got := string(format(testTime, "node-1", 4242, "endpoint.join", false, tc.chain, []byte(line), tc.stream))
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
	if SDID != "hostpass@32473" || len(SDID) > 32 {
		t.Errorf("SD-ID %q: want hostpass@32473 (RFC 5612's documentation PEN), at most 32 characters (RFC 5424 SD-NAME)", SDID)
	}
}

// A collector that cuts a huge record at rsyslog's default 8 KiB keeps its
// STRUCTURED-DATA whole: the chain of exactly the records whose hash the cut
// takes from the body. Even the longest header hostpass writes (255-byte
// host name, 32-byte MSGID, 20-digit seq and epoch) ends its SD within the
// 2048 bytes RFC 5424 §6.1 says every receiver should accept.
func TestStructuredDataSurvivesACut(t *testing.T) {
	big := `{"seq":4,"event":"endpoint.join","options":{"pad":"` + strings.Repeat("x", audit.MaxRecord-200) + `"},"hash":"` + testChain.Hash + `"}`
	for _, stream := range []bool{false, true} {
		msg := string(format(testTime, "node-1", 4242, "endpoint.join", false, testChain, []byte(big), stream))
		if stream { // rsyslog's %rawmsg% has no octet count
			_, msg, _ = strings.Cut(msg, " ")
		}
		cut := parse(t, msg[:rsyslogMax])
		if cut.sd != testSD {
			t.Errorf("stream %v: SD after the cut at %d bytes:\n got %s\nwant %s", stream, rsyslogMax, cut.sd, testSD)
		}
		if !strings.HasPrefix(big, cut.body) || strings.Contains(cut.body, testChain.Hash) {
			t.Errorf("stream %v: the cut body is not the line's start without its hash", stream)
		}
	}

	maxSeq := uint64(math.MaxUint64)
	worst := Chain{Seq: maxSeq, Epoch: &maxSeq, Prev: testChain.Prev, Hash: testChain.Hash}
	msg := string(format(testTime, strings.Repeat("h", 300), math.MaxInt32, strings.Repeat("e", 40), false, worst, []byte(big), false))
	m := parse(t, msg[:2048])
	wantSD := `[hostpass@32473 seq="18446744073709551615" epoch="18446744073709551615" prev="` + testChain.Prev + `" hash="` + testChain.Hash + `"]`
	if m.sd != wantSD {
		t.Errorf("longest header, cut at 2048 bytes: SD\n got %s\nwant %s", m.sd, wantSD)
	}
	end := strings.Index(msg, wantSD) + len(wantSD)
	t.Logf("longest header: STRUCTURED-DATA ends at byte %d", end)
}

// A checkpoint travels whole: for a 64-byte host name its message fits one
// 1500-byte Ethernet frame over IPv4 (1472 bytes of UDP payload), so a UDP
// collector gets it in one unfragmented datagram.
func TestCheckpointMessageFitsOneFrame(t *testing.T) {
	const udpPayload = 1500 - 20 - 8
	hostname := strings.Repeat("h", 64) // Linux's HOST_NAME_MAX
	keyFile := filepath.Join(t.TempDir(), "sign.key")
	if _, err := audit.NewSignKeyFile(keyFile, hostname[:63]); err != nil { // the longest host identity
		t.Fatal(err)
	}
	key, err := audit.ReadSignKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Wipe()
	note, err := audit.SignCheckpoint(key, key.Origin(), 999_999_999, sha256.Sum256([]byte("root")))
	if err != nil {
		t.Fatal(err)
	}
	epoch := uint64(99_999)
	rec := audit.Record{
		Time: testTime, Seq: 1_000_000_000, Event: audit.Checkpoint, Schema: audit.Schema, Outcome: audit.OK,
		Driver: "hostpass", Host: hostname, Checkpoint: string(note), CheckpointReason: "heartbeat",
		Epoch: &epoch, Prev: testChain.Prev, Hash: testChain.Hash,
	}
	line, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	chain := Chain{Seq: rec.Seq, Epoch: &epoch, Prev: rec.Prev, Hash: rec.Hash}
	msg := format(testTime, hostname, 4194304, string(rec.Event), false, chain, line, false)
	if len(msg) > udpPayload {
		t.Errorf("checkpoint message is %d bytes, want at most %d:\n%s", len(msg), udpPayload, msg)
	}
	t.Logf("checkpoint message: %d bytes (record %d, note %d)", len(msg), len(line), len(note))
	if !strings.HasSuffix(string(line), `"hash":"`+testChain.Hash+`"}`) {
		t.Errorf("record line does not end with its hash: %s", line)
	}
}
