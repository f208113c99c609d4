package driver

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/docker/go-plugins-helpers/network"

	"github.com/hostpass/hostpass/audit"
)

// Join gives the container no interface, gateway or route, as the host
// driver does. It cannot put the container into the host's network
// namespace: Docker does that only for --network host. Without
// DisableGatewayService, Docker attaches the container to its gateway bridge
// (docker_gwbridge) for egress; --internal networks get lo only.
func (d *Driver) Join(req *network.JoinRequest) (*network.JoinResponse, error) {
	n, err := d.setup("Join", req.NetworkID, req.EndpointID)
	rec := d.record(audit.EndpointJoin, n)
	rec.NetworkID, rec.EndpointID, rec.SandboxKey, rec.Options = req.NetworkID, req.EndpointID, req.SandboxKey, req.Options
	rec.Sandbox = sandboxState(req.SandboxKey)
	rec.View = d.cfg.HostInterfaces() // the log records it as host.view, named in host_view
	if err != nil {
		return nil, d.refuse(rec, err)
	}
	if err := d.commit(rec); err != nil {
		return nil, err
	}
	return &network.JoinResponse{DisableGatewayService: n.Internal}, nil
}

// sandboxState says what a Join's SandboxKey (EXEC_ROOT/netns/<id>) names
// now, as hostpass sees it (audit.SandboxStates). Docker 28 and later bind
// the container's network namespace there before Join; older engines only
// as the container starts. "absent" needs Docker's exec root in sight: the
// key's folder, or, before the engine's first namespace made it, the exec
// root's libnetwork/ (the set-key socket's folder, there from dockerd's
// start). A managed plugin, in a mount namespace of its own, sees neither
// and cannot tell: "unseen". Empty for an empty or relative key.
func sandboxState(key string) string {
	if !filepath.IsAbs(key) {
		return ""
	}
	netns, err := isNetns(key)
	switch {
	case err == nil && netns:
		return audit.SandboxLive
	case err == nil:
		return audit.SandboxNotNetns
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(key)
		if isDir(dir) || isDir(filepath.Join(filepath.Dir(dir), "libnetwork")) {
			return audit.SandboxAbsent
		}
	}
	return audit.SandboxUnseen
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// Leave undoes nothing, since Join set nothing up. Never refused.
func (d *Driver) Leave(req *network.LeaveRequest) error {
	n := d.known(req.NetworkID)
	rec := d.record(audit.EndpointLeave, n)
	rec.EndpointID = req.EndpointID
	d.keep(rec)
	return nil
}
