//go:build !linux

package driver

import "os"

// isNetns: network namespaces are Linux's; elsewhere nothing at path is one.
// Lstat, as on Linux: a symlink at path is looked at, not followed.
// The daemon is Linux-only; this keeps the package building for tests.
func isNetns(path string) (bool, error) {
	_, err := os.Lstat(path)
	return false, err
}
