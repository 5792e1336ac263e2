"""Checking that a server's address is free before a long-running command starts anything."""

from __future__ import annotations

import errno
import socket

from hub.errors import PorchlightError, UsageError


class PortInUse(PorchlightError):
    """Another process listens on the address a server was asked to use."""


def split_listen(listen: str) -> tuple[str, int]:
    """Split HOST:PORT (IPv6 as [ADDR]:PORT); refuse anything else in one line."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen must be HOST:PORT (example: 127.0.0.1:8765), got {listen!r}")
    return host.strip("[]"), int(port)


def require_free_port(host: str, port: int, hint: str) -> None:
    """Raise PortInUse (or a one-line error) if HOST:PORT cannot be listened on now."""
    if port == 0:
        return  # the system picks a free one
    try:
        # The same socket options as asyncio's servers (SO_REUSEADDR on POSIX), so a port
        # left in TIME_WAIT by a hub that just stopped counts as free, as it will for aiohttp.
        probe = socket.create_server((host, port))
    except OSError as err:
        raise listen_error(err, host, port, hint) from None
    probe.close()


def listen_error(err: OSError, host: str, port: int, hint: str) -> PorchlightError:
    """Turn a failure to listen on HOST:PORT into one line that says what to do."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if err.errno == errno.EADDRINUSE:
        return PortInUse(f"{where} is in use: {hint}")
    if isinstance(err, socket.gaierror):
        return PorchlightError(f"cannot listen on {where}: {host} cannot be resolved")
    return PorchlightError(f"cannot listen on {where}: {err.strerror or err}")


def is_address_in_use(err: BaseException) -> bool:
    """Tell whether an error (or one it was raised from) is EADDRINUSE."""
    while err is not None:
        if isinstance(err, OSError) and err.errno == errno.EADDRINUSE:
            return True
        err = err.__cause__ or err.__context__
    return False
