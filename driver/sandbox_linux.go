package driver

import "golang.org/x/sys/unix"

// isNetns reports whether a network namespace is mounted at path: a bind
// mount of /proc/PID/ns/net, as Docker and `ip netns` make, is on nsfs.
// One statfs of a path under Docker's exec root, a local tmpfs: it does not
// block on the network, so Join does not bound it.
func isNetns(path string) (bool, error) {
	var st unix.Statfs_t
	err := unix.Statfs(path, &st)
	for err == unix.EINTR {
		err = unix.Statfs(path, &st)
	}
	if err != nil {
		return false, err
	}
	return st.Type == unix.NSFS_MAGIC, nil
}
