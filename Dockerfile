# Root filesystem of the managed (v2) plugin; `make rootfs` builds it with a
# staging context that holds only bin/hostpass. FROM scratch needs no pull.
FROM scratch
COPY bin/hostpass /hostpass
# Empty directories the plugin needs: its socket directory and the mount
# point of the "varlog" mount (see config.json). WORKDIR creates a directory
# without needing anything in the build context. There is no /var/lib: the
# plugin's state lives under the host's /var/log (HOSTPASS_STATE_DIR).
WORKDIR /run/docker/plugins
WORKDIR /var/log
WORKDIR /
ENTRYPOINT ["/hostpass", "serve"]
