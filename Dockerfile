# Root filesystem of the managed (v2) plugin; `make rootfs` builds it with a
# staging context that holds only bin/hostpass. FROM scratch needs no pull.
FROM scratch
COPY bin/hostpass /hostpass
# Empty directories the plugin needs: its socket directory and the mount
# points of the "audit" and "state" mounts (see config.json). WORKDIR
# creates a directory without needing anything in the build context.
WORKDIR /run/docker/plugins
WORKDIR /var/log/hostpass
WORKDIR /var/lib/hostpass
WORKDIR /
ENTRYPOINT ["/hostpass", "serve"]
