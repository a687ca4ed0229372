"""The lab refuses to start on a network backend that would route lab traffic out."""

from __future__ import annotations

import subprocess

import pytest

from lab import lab


def _backend(name: str) -> object:
    def fake_podman(*args: str, **_: object) -> subprocess.CompletedProcess[str]:
        assert args[:1] == ("info",)
        return subprocess.CompletedProcess(["podman", *args], 0, stdout=f"{name}\n", stderr="")

    return fake_podman


def test_a_cni_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab.pm, "podman", _backend("cni"))
    with pytest.raises(RuntimeError, match="network backend is 'cni', not 'netavark'"):
        lab.require_netavark()


def test_netavark_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab.pm, "podman", _backend("netavark"))
    lab.require_netavark()
