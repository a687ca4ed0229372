"""The local data-center lab: real Debian hosts under podman mirroring a stack's zones and flows."""
