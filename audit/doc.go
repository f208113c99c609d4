// Package audit keeps hostpass's audit trail: an append-only file of JSON
// lines, one record per lifecycle call, each fsynced before Docker hears "ok".
//
// Every record carries the hash of the one before it (a hash chain); in a
// sealed log that hash is an HMAC under a key that evolves one way, so that
// whoever takes the host later cannot rewrite what was written before.
//
// The files, one operation each, in reading order:
//
//	record.go         the record schema: events, outcomes, fields
//	log.go            the API: Options, Open, OpenWith, Append, AppendOrKeep,
//	                  Pending, Rotate, Close; ErrUnavailable
//	commit.go         the committer: one goroutine owns the file; group commit
//	                  (run, commit, flush, write), records kept while the log is
//	                  unwritable and the audit.lost record, shutdown
//	chain.go          hashing of the chain: Genesis, encode, splitHash, lineHash
//	bound.go          the size bound every record is cut to before it is written
//	view.go           host.view records: the host's interfaces, written on change
//	seal.go           sealing and key evolution: NextKey, evolve, advanceKey
//	checkpointing.go  the writer's side of signing: audit.checkpoint records
//	                  on their schedule, a signed epoch's end (evolveSigned,
//	                  the key step on the committer) and its recovery
//	checkpointtree.go the tree the committer keeps in <log>.tree: rebuilt,
//	                  appended beside the fsync, cached, signed over
//	startstop.go      Start, audit.restart and audit.stop; records owed
//	keyfile.go        sealing keys on disk: NewKeyFile, StepKeyFile, ReadKeyFile
//	recover.go        opening the file: torn tails and failed writes set aside
//	tail.go           reading where a file's chain ends, in bounded memory
//	rotate.go         rotation and file naming: Files, FilesIn, lastRotated
//	read.go           the read pipeline: lines in batches, work on every core
//	fastparse.go      reading a line's chain fields without encoding/json
//	verify.go         Verify: the chain, in order, across files
//	verify_problem.go what verify reports: problem kinds and their texts
//	verify_seal.go    where a log starts, and its seals under the initial key
//	verify_view.go    the host view each record names
//	verify_sign.go    a signed log (--pubkey): the key chain as the log goes,
//	                  each checkpoint against the tree built as verify goes,
//	                  heartbeat gaps
//	verify_collected.go checkpoints collected off the host (--checkpoint):
//	                  read from a note or a collector's lines, proven with
//	                  consistency proofs (cut tail, rewritten history)
//	bundle.go         proof bundles: the format (Bundle), Prove
//	bundle_check.go   CheckBundle: a bundle checked offline with FILE.pub
//	query.go          Query and Follow, what `hostpass audit show` reads
//	replay.go         Replay: recent records for the watcher after a restart
//
// The verifier's files (verify*.go, bundle*.go, proof.go, checkpoint.go,
// keychain.go) depend on nothing of the writer (log.go, commit.go,
// recover.go, checkpointing.go): an auditor checks a log on a laptop, away
// from the host.
package audit
