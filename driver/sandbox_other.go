//go:build !linux

package driver

import "os"

// isNetns: network namespaces are Linux's; elsewhere nothing at path is one.
// The daemon is Linux-only; this keeps the package building for tests.
func isNetns(path string) (bool, error) {
	_, err := os.Stat(path)
	return false, err
}
