package daemon

import (
	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
)

// notify tells systemd (a Type=notify unit) the daemon's state: READY=1 once
// the socket accepts connections, so that Docker, ordered after hostpass,
// never starts before the plugin socket exists. Outside systemd
// (NOTIFY_SOCKET unset) it does nothing.
func notify(log *logrus.Entry, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		log.WithError(err).WithField("state", state).Warn("cannot notify systemd")
	}
}
