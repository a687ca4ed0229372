"""SSH servers on loopback that misbehave on purpose (paramiko's server side), for the review's
host collector: each accepts the client's key, then answers the probe command the way its
`behaviour` says.

- `silent`: accepts TCP and never says a word (no banner, no key exchange);
- `hang`: runs the command and never writes or exits;
- `trickle`: writes one byte every `interval` seconds, forever;
- `close-and-hang`: writes the output, closes it (EOF), never sends an exit status;
- `answer`: writes `output` and exits 0, as a well-behaved host does.

Only loopback: the servers bind 127.0.0.1 on a free port, and stop with the context.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko


@dataclass(frozen=True)
class Stub:
    port: int
    known_hosts: Path
    key_file: Path


class _Server(paramiko.ServerInterface):
    def __init__(self) -> None:
        self.command = threading.Event()

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return (
            paramiko.OPEN_SUCCEEDED
            if kind == "session"
            else paramiko.OPEN_FAILED_UNKNOWN_CHANNEL_TYPE
        )

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: Any) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        self.command.set()
        return True


def _serve(conn: socket.socket, host_key: paramiko.PKey, behaviour: str, output: bytes,
           interval: float, stop: threading.Event) -> None:  # fmt: skip
    if behaviour == "silent":
        stop.wait()
        conn.close()
        return
    transport = paramiko.Transport(conn)
    transport.add_server_key(host_key)
    server = _Server()
    try:
        transport.start_server(server=server)
        channel = transport.accept(20)
        if channel is None or not server.command.wait(20):
            return
        if behaviour == "answer":
            channel.sendall(output)
            channel.send_exit_status(0)
            channel.shutdown_write()
        elif behaviour == "trickle":
            while not stop.is_set() and not channel.closed:
                channel.send(b" ")
                time.sleep(interval)
        elif behaviour == "close-and-hang":
            channel.sendall(output)
            channel.shutdown_write()  # EOF on stdout, and no exit status ever
        stop.wait()
    except (EOFError, OSError, paramiko.SSHException):
        pass
    finally:
        transport.close()


@contextmanager
def misbehaving_host(tmp_path: Path, behaviour: str, output: bytes = b"{}",
                     interval: float = 0.5) -> Iterator[Stub]:  # fmt: skip
    host_key = paramiko.Ed25519Key.from_private_key_file(_key(tmp_path, "host"))
    client_key = _key(tmp_path, "client")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}\n")
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(
                target=_serve, daemon=True, args=(conn, host_key, behaviour, output, interval, stop)
            )
            t.start()
            threads.append(t)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield Stub(port, known, Path(client_key))
    finally:
        stop.set()
        listener.close()
        acceptor.join(5)
        for t in threads:
            t.join(5)


def _key(tmp_path: Path, name: str) -> str:
    """An Ed25519 key made by ssh-keygen (paramiko cannot generate Ed25519 keys)."""
    import subprocess

    path = tmp_path / f"{name}_ed25519"
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                       check=True, capture_output=True, timeout=30)  # fmt: skip
    return str(path)
