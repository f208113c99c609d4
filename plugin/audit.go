package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hostpass/hostpass/audit"
)

func newAuditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check and read the audit log, and make sealing keys",
		Long: `Check and read the audit log, and make sealing keys.

Without FILE or DIR, verify and show read the daemon's log ($HOSTPASS_AUDIT_LOG,
or /var/log/hostpass/audit.jsonl) and the files rotated from it, oldest first.`,
		Args: cobra.NoArgs,
		RunE: usageOnly,
	}
	cmd.AddCommand(newAuditVerifyCommand(), newAuditShowCommand(), newAuditKeygenCommand())
	return cmd
}

// logFiles resolves the FILE... | DIR arguments to the log's files in chain
// order. One file named is taken with the files rotated from it.
func logFiles(args []string) ([]string, error) {
	if len(args) == 0 {
		path := os.Getenv("HOSTPASS_AUDIT_LOG")
		if path == "" {
			path = "/var/log/hostpass/audit.jsonl"
		}
		args = []string{path}
	}
	var files []string
	var err error
	if len(args) > 1 {
		files = args
	} else if st, serr := os.Stat(args[0]); serr == nil && st.IsDir() {
		files, err = audit.FilesIn(args[0])
	} else if serr != nil && !errors.Is(serr, os.ErrNotExist) {
		return nil, serr
	} else {
		files, err = audit.Files(args[0])
	}
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no audit log at %s", strings.Join(args, " "))
	}
	return files, nil
}

// anchors collects --anchor SEQ:HASH flags.
type anchors map[uint64]string

func (a anchors) String() string { return "" }
func (a anchors) Type() string   { return "SEQ:HASH" }
func (a anchors) Set(s string) error {
	seq, h, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	if _, herr := hex.DecodeString(h); !ok || err != nil || n == 0 || len(h) != 64 || herr != nil {
		return fmt.Errorf("want SEQ:HASH, a record's seq and its 64-hex-digit hash, got %q", s)
	}
	a[n] = h
	return nil
}
