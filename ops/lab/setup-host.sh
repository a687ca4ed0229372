#!/usr/bin/env bash
# Installs what claims-dc needs on a Debian 12 control node, as root. Does nothing that is
# already done: safe to run before every make target.
set -euo pipefail

PACKAGES=(podman runc debootstrap openssh-client nftables iproute2 util-linux ca-certificates
          python3-venv make git)

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
# machine's hard limit (LAB-NOTES.md). ops.lab passes these flags itself; the file is for
# anyone running podman (or Ansible's podman modules) by hand.
conf=/etc/containers/containers.conf
if [[ ! -e $conf ]]; then
    install -d /etc/containers
    cat > "$conf" <<'CONF'
# Written by claims-dc (ops/lab/setup-host.sh).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
fi
