package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
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
	cmd.AddCommand(newAuditVerifyCommand(), newAuditShowCommand(), newAuditSessionsCommand(), newAuditKeygenCommand(), newAuditProveCommand(), newAuditCheckProofCommand())
	return cmd
}

// logFiles resolves the FILE... | DIR arguments to the log's files in chain
// order. One file named is taken with the files rotated from it. A log that
// is not there is a failure (exit 1), whether named or the default, as any
// other problem with the files is: the command was used rightly.
func logFiles(args []string) ([]string, error) {
	where := ""
	if len(args) == 0 {
		path, ok := os.LookupEnv("HOSTPASS_AUDIT_LOG")
		where = " (from HOSTPASS_AUDIT_LOG; or name the log's FILE or DIR)"
		if !ok || path == "" {
			path = "/var/log/hostpass/audit.jsonl"
			where = " (the default: set HOSTPASS_AUDIT_LOG, or name the log's FILE or DIR)"
		}
		args = []string{path}
	}
	missing := func(path string, err error) error {
		return failed(fmt.Errorf("no audit log at %s%s: %w", path, where, err))
	}
	if len(args) > 1 {
		for _, f := range args {
			if _, err := os.Stat(f); err != nil {
				return nil, missing(f, err)
			}
		}
		return args, nil
	}
	var files []string
	st, err := os.Stat(args[0])
	switch {
	case err == nil && st.IsDir():
		files, err = audit.FilesIn(args[0])
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, missing(args[0], err)
	default:
		// The current file may be missing while rotated ones remain.
		if files, err = audit.Files(args[0]); err == nil && len(files) == 0 {
			_, err = os.Stat(args[0])
		}
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, missing(args[0], err)
		}
		return nil, failed(err) // a directory holding no log, or several
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
