package driver

import "golang.org/x/sys/unix"

// isNetns reports whether a network namespace is mounted at path: a bind
// mount of /proc/PID/ns/net, as Docker and `ip netns` make, is on nsfs.
// O_PATH|O_NOFOLLOW opens the path itself: a symlink there is looked at,
// not followed, and an automount there is not triggered. The folders on
// the way are followed (the default exec root is under the symlink
// /var/run); Join bounds the look in time (sandboxState).
func isNetns(path string) (bool, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	err = unix.Fstatfs(fd, &st)
	for err == unix.EINTR {
		err = unix.Fstatfs(fd, &st)
	}
	if err != nil {
		return false, err
	}
	return st.Type == unix.NSFS_MAGIC, nil
}
