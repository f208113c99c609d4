# Root filesystem of the managed (v2) plugin; `make rootfs` builds it with a
# staging context that holds only bin/hostpass. FROM scratch needs no pull.
FROM scratch
COPY bin/hostpass /hostpass
# Empty directories the plugin needs: its socket directory and the mount
# points of the "varlog" and "varlib" mounts (see config.json). WORKDIR
# creates a directory without needing anything in the build context.
WORKDIR /run/docker/plugins
WORKDIR /var/log
WORKDIR /var/lib
WORKDIR /
ENTRYPOINT ["/hostpass", "serve"]
