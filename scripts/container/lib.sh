# shellcheck shell=bash disable=SC2034  # (STORAGE_DRIVER, BUILD_NETNS, ULIMIT_ARGS are read by the caller)
# Helpers for scripts/container-test (sourced, not run): a private podman configuration, base
# images made without any container registry, and a user-mode network for `podman build`.
#
# Everything lives under $WORK (default /var/tmp/mcp-bridge-container) and survives between runs:
#   conf/       containers.conf, storage.conf, registries.conf (podman reads these instead of
#               /etc/containers: CONTAINERS_CONF, CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF)
#   storage-*/  podman's image store (one per storage driver)
#   debs/       debootstrap's package cache
#   rootfs/     the debootstrapped Debian tree the base images are made from
#   logs/       build logs of the last run
# Nothing on the host's network is changed: no CNI bridge, no iptables rules. Containers run with
# --network slirp4netns, and builds join a network namespace this file gives its own slirp4netns.
# Expects WORK, REPO and the functions log and setup_fail from the caller.

BASE_LABEL=mcp-bridge.container-test.base
DEBIAN_TAG=docker.io/library/debian:bookworm-slim
RUST_TAG=docker.io/library/rust:1-bookworm
STD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Installs the container tools from Debian when any is missing.
ensure_packages() {
  local pkgs=(podman buildah runc slirp4netns fuse-overlayfs debootstrap uidmap curl) missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Writes the private podman configuration and exports the variables that select it. The storage
# driver is kernel overlay when it works here, else vfs (slower, always works);
# MCP_BRIDGE_CONTAINER_STORAGE=vfs|overlay forces one.
configure_podman() {
  local conf="$WORK/conf" driver="${MCP_BRIDGE_CONTAINER_STORAGE:-}"
  mkdir -p "$conf"
  # Podman asks runc for higher NOFILE/NPROC limits than this sandbox lets even root set (runc:
  # "error setting rlimit type 7: operation not permitted"; NOFILE is capped at 20000 here, and
  # NPROC above 32768 fails the same way), so every container gets explicit ones within those.
  # A --ulimit flag replaces all of these defaults, so callers that pass one pass both
  # (ULIMIT_ARGS).
  local nofile nproc
  nofile="$(ulimit -Hn)" nproc="$(ulimit -Hu)"
  if [ "$nofile" = unlimited ] || [ "$nofile" -gt 20000 ]; then nofile=20000; fi
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
  ULIMIT_ARGS=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
  # runc: the runtime Debian's podman depends on. cgroupfs and file events: no systemd needed.
  cat > "$conf/containers.conf" <<EOF
[containers]
netns = "slirp4netns"
log_driver = "k8s-file"
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "/run/mcp-bridge-container/libpod"
EOF
  # Images are only ever imported or built here: nothing is pulled from a registry.
  cat > "$conf/registries.conf" <<'EOF'
unqualified-search-registries = []
short-name-mode = "disabled"
EOF
  export CONTAINERS_CONF="$conf/containers.conf"
  export CONTAINERS_REGISTRIES_CONF="$conf/registries.conf"
  export CONTAINERS_STORAGE_CONF="$conf/storage.conf"
  if [ -z "$driver" ]; then
    write_storage_conf overlay
    if podman info >/dev/null 2>"$WORK/logs/podman-info.log"; then
      driver=overlay
    else
      log "overlay storage does not work here ($(tail -1 "$WORK/logs/podman-info.log")); using vfs"
      driver=vfs
    fi
  fi
  write_storage_conf "$driver"
  podman info >/dev/null 2>"$WORK/logs/podman-info.log" \
    || setup_fail "podman info with $driver storage: $(tail -1 "$WORK/logs/podman-info.log")"
  STORAGE_DRIVER="$driver"
}

write_storage_conf() {
  cat > "$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "$1"
graphroot = "$WORK/storage-$1"
runroot = "/run/mcp-bridge-container/storage-$1"
EOF
}

# The Debian mirror this host's apt uses (its first .../debian URI), so debootstrap goes through
# the same route. $1: "debian" or "debian-security".
host_mirror() {
  local want="$1" uri
  uri="$({ grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
           grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
             | sed -E 's/^deb +(\[[^]]*\] +)?([^ ]+).*/\2/'; } \
         | grep -E "/$want/?\$" | head -1 || true)"
  echo "${uri:-http://deb.debian.org/$want}"
}

# The label value a base image was made with; empty when the image is missing.
image_key() {
  podman image inspect --format "{{index .Labels \"$BASE_LABEL\"}}" "$1" 2>/dev/null || true
}

# The host's extra CA certificates (the egress proxy's in the sandbox), also a cache key input.
host_cas() { find /usr/local/share/ca-certificates -name '*.crt' -type f 2>/dev/null | sort; }

# debian:bookworm-slim from debootstrap (minbase, plus ca-certificates and the host's extra CAs so
# apt/npm/pip/cargo in builds get through a TLS-intercepting egress proxy). Made like Debian's
# slim image: deb822 sources with updates and security, no docs, man pages or locales, and its
# apt settings that keep package caches out of image layers.
ensure_debian_image() {
  local mirror security key rootfs="$WORK/rootfs/debian"
  mirror="${MCP_BRIDGE_CONTAINER_MIRROR:-$(host_mirror debian)}"
  security="$(host_mirror debian-security)"
  key="v2 bookworm $mirror $security $(host_cas | xargs -r cat | sha256sum | cut -c1-16)"
  DEBIAN_KEY="$key"
  if [ "$(image_key "$DEBIAN_TAG")" = "$key" ]; then
    log "base $DEBIAN_TAG: cached"
    return 0
  fi
  if [ ! -f "$rootfs.key" ] || [ "$(cat "$rootfs.key")" != "$key" ]; then
    make_debian_rootfs "$rootfs" "$mirror" "$security"
    printf '%s\n' "$key" > "$rootfs.key"
  fi
  log "base $DEBIAN_TAG: podman import"
  tar -C "$rootfs" -c . | podman import --change "ENV PATH=$STD_PATH" --change 'CMD ["bash"]' \
    --change "LABEL $BASE_LABEL=\"$key\"" - "$DEBIAN_TAG" >"$WORK/logs/import-debian.log" 2>&1 \
    || setup_fail "podman import $DEBIAN_TAG (see $WORK/logs/import-debian.log)"
}

make_debian_rootfs() {
  local rootfs="$1" mirror="$2" security="$3" ca
  log "debootstrap bookworm from $mirror"
  rm -rf "$rootfs" "$rootfs.tmp" "$rootfs.key"
  mkdir -p "$WORK/debs" "$(dirname "$rootfs")"
  debootstrap --variant=minbase --include=ca-certificates --cache-dir="$WORK/debs" \
    bookworm "$rootfs.tmp" "$mirror" >"$WORK/logs/debootstrap.log" 2>&1 \
    || setup_fail "debootstrap (see $WORK/logs/debootstrap.log)"
  rm -f "$rootfs.tmp/etc/apt/sources.list" "$rootfs.tmp/etc/resolv.conf" "$rootfs.tmp/etc/hostname"
  cat > "$rootfs.tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat > "$rootfs.tmp/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
  cat > "$rootfs.tmp/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::Languages "none";\n' > "$rootfs.tmp/etc/apt/apt.conf.d/docker-no-languages"
  printf 'Acquire::GzipIndexes "true";\n' > "$rootfs.tmp/etc/apt/apt.conf.d/docker-gzip-indexes"
  printf 'Apt::AutoRemove::SuggestsImportant "false";\n' \
    > "$rootfs.tmp/etc/apt/apt.conf.d/docker-autoremove-suggests"
  while read -r ca; do cp "$ca" "$rootfs.tmp/usr/local/share/ca-certificates/"; done < <(host_cas)
  chroot "$rootfs.tmp" update-ca-certificates >>"$WORK/logs/debootstrap.log" 2>&1
  find "$rootfs.tmp/usr/share/doc" -type f ! -name copyright -delete
  rm -rf "$rootfs.tmp"/usr/share/{man,info,groff}/* "$rootfs.tmp"/var/cache/apt/archives/*.deb \
    "$rootfs.tmp"/var/lib/apt/lists/*
  find "$rootfs.tmp/usr/share/locale" -mindepth 1 ! -name locale.alias -delete
  mv "$rootfs.tmp" "$rootfs"
}

# rust:1-bookworm: the Debian tree plus gcc and libc6-dev (the static link needs libc.a), and
# this host's Rust toolchain laid out like the official image (/usr/local/rustup toolchain,
# /usr/local/cargo/bin on PATH; plain links instead of rustup proxies).
ensure_rust_image() {
  local sysroot name key dir="$WORK/rootfs/rust.tmp" bin
  sysroot="$(rustc --print sysroot)"
  name="$(basename "$sysroot")"
  key="$DEBIAN_KEY $(rustc -V) $name"
  if [ "$(image_key "$RUST_TAG")" = "$key" ]; then
    log "base $RUST_TAG: cached"
    return 0
  fi
  log "base $RUST_TAG: debian + gcc libc6-dev + $(rustc -V)"
  rm -rf "$dir"
  cp -a "$WORK/rootfs/debian" "$dir"
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  # shellcheck disable=SC2016  # $1 expands in the inner shell
  # A private mount namespace: /proc inside the chroot disappears with it, whatever happens.
  unshare --mount --fork sh -c 'mount -t proc proc "$1/proc" && chroot "$1" sh -c \
      "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
       --no-install-recommends gcc libc6-dev"' _ "$dir" >"$WORK/logs/rust-base.log" 2>&1 \
    || setup_fail "apt-get install gcc libc6-dev in the rust base (see $WORK/logs/rust-base.log)"
  rm -rf "$dir/etc/resolv.conf" "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb
  mkdir -p "$dir/usr/local/rustup/toolchains/$name" "$dir/usr/local/cargo/bin"
  tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$dir/usr/local/rustup/toolchains/$name" -x
  for bin in "$dir/usr/local/rustup/toolchains/$name/bin"/*; do
    ln -s "/usr/local/rustup/toolchains/$name/bin/$(basename "$bin")" "$dir/usr/local/cargo/bin/"
  done
  tar -C "$dir" -c . | podman import --change "ENV PATH=/usr/local/cargo/bin:$STD_PATH" \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'CMD ["bash"]' --change "LABEL $BASE_LABEL=\"$key\"" - "$RUST_TAG" \
    >"$WORK/logs/import-rust.log" 2>&1 || setup_fail "podman import $RUST_TAG (see $WORK/logs/import-rust.log)"
  rm -rf "$dir"
}

# A network namespace with its own slirp4netns for `podman build --network ns:PATH`. Rootful
# buildah offers only CNI networks (a host bridge plus iptables rules), the host's namespace, or
# none; builds need the network (apt, crates.io, PyPI), so they get a user-mode one like the
# containers. Sets BUILD_NETNS; stop_build_network ends both processes.
start_build_network() {
  unshare --net --fork --kill-child sleep infinity &
  NETNS_PID=$!
  for _ in $(seq 50); do
    NETNS_CHILD="$(pgrep -P "$NETNS_PID" || true)"
    [ -n "$NETNS_CHILD" ] && break
    sleep 0.1
  done
  [ -n "$NETNS_CHILD" ] || setup_fail "could not start a network namespace for the build"
  slirp4netns --configure --mtu=65520 --disable-host-loopback "$NETNS_CHILD" tap0 \
    >"$WORK/logs/slirp4netns-build.log" 2>&1 &
  SLIRP_PID=$!
  for _ in $(seq 50); do
    nsenter -t "$NETNS_CHILD" -n ip -br addr show tap0 2>/dev/null | grep -q 10.0.2.100 && break
    sleep 0.1
  done
  nsenter -t "$NETNS_CHILD" -n ip -br addr show tap0 2>/dev/null | grep -q 10.0.2.100 \
    || setup_fail "slirp4netns did not configure the build network"
  BUILD_NETNS="/proc/$NETNS_CHILD/ns/net"
}

# unshare --fork ignores SIGTERM while it waits, so its child (the sleep) is ended first.
stop_build_network() {
  local pid
  for pid in "${SLIRP_PID:-}" "${NETNS_CHILD:-}" "${NETNS_PID:-}"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
  for pid in "${SLIRP_PID:-}" "${NETNS_PID:-}"; do
    if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
  done
  SLIRP_PID="" NETNS_CHILD="" NETNS_PID=""
}
