#!/usr/bin/env bash
# Installs what claims-dc needs on a Debian 12 control node, as root. Does nothing that is
# already done: safe to run before every make target.
set -euo pipefail

# netavark is only a Recommends of podman: without it podman falls back to CNI, whose internal
# networks give the control node no address on the bridge, so its traffic to lab addresses
# would follow the default route out of the machine. It is required here, and pinned below;
# netavark drives the firewall through iptables.
PACKAGES=(podman runc netavark aardvark-dns iptables debootstrap openssh-client nftables iproute2
          util-linux ca-certificates python3-venv make git
          graphviz fonts-noto-cjk  # the linkage report's zone diagram, in Japanese
          postgresql-15            # the claim application's tests run a private cluster
          restic                   # bench/backup_vs_restic.py: the anchor
          pgbackrest               # bench/restore_time.py: the anchor
          chromium chromium-driver libnss3-tools)  # the pages in a real browser (lab/browser.py)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >&2
fi

# crun fails on these hosts (cgroups v1/hybrid) and the default open-files limit is above the
# machine's hard limit (LAB-NOTES.md). lab passes these flags itself; the file is for
# anyone running podman (or Ansible's podman modules) by hand.
conf=/etc/containers/containers.conf
if [[ ! -e $conf ]]; then
    install -d /etc/containers
    cat > "$conf" <<'CONF'
# Written by claims-dc (lab/setup-host.sh).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
fi

# Pin the network backend whatever containers.conf says or podman cached on this machine.
install -d /etc/containers/containers.conf.d
cat > /etc/containers/containers.conf.d/50-claims-dc.conf <<'CONF'
# Written by claims-dc (lab/setup-host.sh): the lab needs netavark, never CNI.
[network]
network_backend = "netavark"
CONF
backend=$(podman info --format '{{.Host.NetworkBackend}}')
if [[ $backend != netavark ]]; then
    echo "setup: podman uses the '$backend' network backend; claims-dc needs netavark" >&2
    exit 1
fi
