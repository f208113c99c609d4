package driver

// Lookup reports whether id is a network hostpass serves (created or
// adopted), with what the watcher's records say of it: its tag, and whether
// it is --internal and adopted.
func (d *Driver) Lookup(id string) (tag string, internal, adopted, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[id]
	return n.Tag, n.Internal, n.Adopted, ok
}
