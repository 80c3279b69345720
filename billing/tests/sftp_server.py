"""A real SFTP server on loopback for the delivery tests: asyncssh's own, on its own event loop thread.

It accepts one user with one public key, serves a directory as that user's root (chroot) and
records the SFTP operations it served, so a test can see the temporary name and the rename.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import asyncssh


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SftpServer:
    """Start with start(); stop() closes the listener (clients then get "connection refused")."""

    def __init__(self, root: Path, *, user: str, client_public_key: str, port: int | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.port = port or free_port()
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_public_key = client_public_key
        self.operations: list[tuple[str, ...]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: Any = None

    @property
    def host_public_key(self) -> str:
        return self.host_key.export_public_key().decode().strip()

    def _sftp_factory(self, channel: Any) -> asyncssh.SFTPServer:
        server = self
        root = str(self.root).encode()

        class RecordingSFTPServer(asyncssh.SFTPServer):
            def open(self, path: bytes, pflags: int, attrs: Any) -> Any:
                server.operations.append(("open", path.decode()))
                return super().open(path, pflags, attrs)

            def rename(self, oldpath: bytes, newpath: bytes) -> Any:
                server.operations.append(("rename", oldpath.decode(), newpath.decode()))
                return super().rename(oldpath, newpath)

            def posix_rename(self, oldpath: bytes, newpath: bytes) -> Any:
                server.operations.append(("posix_rename", oldpath.decode(), newpath.decode()))
                return super().posix_rename(oldpath, newpath)

        return RecordingSFTPServer(channel, chroot=root)

    def start(self) -> SftpServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        async def listen() -> None:
            try:
                self._listener = await asyncssh.listen(
                    "127.0.0.1",
                    self.port,
                    server_host_keys=[self.host_key],
                    authorized_client_keys=asyncssh.import_authorized_keys(f"{self.client_public_key}\n"),
                    sftp_factory=self._sftp_factory,
                    allow_scp=False,
                    reuse_address=True,
                )
            except OSError as exc:  # a taken port, reported to the starting thread
                failure.append(exc)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(listen())
            ready.set()
            if not failure:
                loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name=f"sftp-server-{self.port}")
        self._thread.start()
        assert ready.wait(10), "the SFTP server did not start"
        if failure:
            self._thread.join(10)
            self._loop = self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        loop = self._loop

        async def close() -> None:
            self._listener.close()
            await self._listener.wait_closed()
            loop.stop()

        asyncio.run_coroutine_threadsafe(close(), loop)
        self._thread.join(10)
        self._loop = self._thread = None

    def files(self) -> dict[str, bytes]:
        return {path.name: path.read_bytes() for path in sorted(self.root.iterdir()) if path.is_file()}
