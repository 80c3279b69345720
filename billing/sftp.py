"""The SFTP transport of the outbox (asyncssh): one upload to a temporary name, then a rename.

Nothing here knows the database; billing.delivery decides what to send and records what happened.
The server must present exactly the configured host key: a server that does not is refused before
any byte of the file leaves (HostKeyRefused), because a BILLDET file holds customers' data.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import asyncssh
from django.conf import settings


class UploadFailed(Exception):
    """The server was unreachable, or refused a login or an SFTP operation; trying again may work."""


class HostKeyRefused(UploadFailed):
    """The server's host key is not the configured one: nothing was sent."""


@dataclass(frozen=True)
class SftpTarget:
    host: str
    port: int
    user: str
    key_file: str
    key_passphrase: str
    known_host_key: str
    remote_dir: str
    timeout_s: float

    @classmethod
    def from_settings(cls) -> SftpTarget | None:
        """The configured server, or None when delivery is off (BILLING_SFTP_HOST empty)."""
        if not settings.BILLING_SFTP_HOST:
            return None
        return cls(
            host=settings.BILLING_SFTP_HOST,
            port=settings.BILLING_SFTP_PORT,
            user=settings.BILLING_SFTP_USER,
            key_file=settings.BILLING_SFTP_KEY_FILE,
            key_passphrase=settings.BILLING_SFTP_KEY_PASSPHRASE,
            known_host_key=settings.BILLING_SFTP_KNOWN_HOST_KEY,
            remote_dir=settings.BILLING_SFTP_REMOTE_DIR,
            timeout_s=settings.BILLING_SFTP_TIMEOUT_S,
        )

    def describe(self) -> str:
        where = f"{self.user}@{self.host}:{self.port}"
        return where if self.remote_dir in (".", "") else f"{where}, directory {self.remote_dir}"

    def remote_path(self, name: str) -> str:
        return posixpath.join(self.remote_dir, name)


def upload(*, target: SftpTarget, name: str, data: bytes, temporary_name: str) -> str:
    """Write data to temporary_name in the remote directory, then rename it to name (replacing an
    older version); returns the final remote path. Raises HostKeyRefused or UploadFailed."""
    try:
        return _run_to_end(
            lambda: asyncio.wait_for(_upload(target, name, data, temporary_name), timeout=target.timeout_s * 2)
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostKeyRefused(
            f"host key refused: {target.host}:{target.port} does not present the configured key ({exc})"
        ) from None
    except TimeoutError:
        raise UploadFailed(
            f"timed out after {target.timeout_s * 2:g} s talking to {target.host}:{target.port}"
        ) from None
    except asyncssh.PermissionDenied as exc:
        raise UploadFailed(f"login refused for {target.user}@{target.host}:{target.port}: {exc.reason}") from None
    except asyncssh.SFTPError as exc:
        raise UploadFailed(f"SFTP error: {exc.reason} (code {exc.code})") from None
    except (OSError, asyncssh.Error) as exc:
        raise UploadFailed(f"cannot reach {target.host}:{target.port}: {exc}") from None


def _run_to_end(coroutine: Callable[[], Coroutine[Any, Any, str]]) -> str:
    """Run a coroutine on an event loop of its own, in this thread, or in a helper thread when this
    thread already runs a loop (an async caller, or Playwright's in the browser tests)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sftp") as pool:
        return pool.submit(lambda: asyncio.run(coroutine())).result()


async def _upload(target: SftpTarget, name: str, data: bytes, temporary_name: str) -> str:
    client_key = asyncssh.read_private_key(target.key_file, target.key_passphrase or None)
    host_key = asyncssh.import_public_key(target.known_host_key)
    async with (
        asyncssh.connect(
            target.host,
            target.port,
            username=target.user,
            client_keys=[client_key],
            # (trusted host keys, trusted CA keys, revoked keys): exactly the configured key.
            known_hosts=([host_key], [], []),
            # Nothing from the process's ~/.ssh or an agent: the settings say everything.
            config=[],
            agent_path=None,
            password=None,
            kbdint_auth=False,
            connect_timeout=target.timeout_s,
            login_timeout=target.timeout_s,
        ) as connection,
        connection.start_sftp_client() as sftp,
    ):
        temporary, final = target.remote_path(temporary_name), target.remote_path(name)
        async with sftp.open(temporary, "wb") as remote:
            await remote.write(data)
        try:
            # Atomic replace where the server has OpenSSH's extension (OpenSSH, asyncssh, most).
            await sftp.posix_rename(temporary, final)
        except asyncssh.SFTPOpUnsupported:
            # Plain SFTPv3 rename refuses an existing target: remove the older version first.
            if await sftp.exists(final):
                await sftp.remove(final)
            await sftp.rename(temporary, final)
        return final
