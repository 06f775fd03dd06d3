"""Listening sockets bound by the command line before anything is printed.

A banner that names a URL is printed only once the port is ours: a busy port ends the command
with one line naming the port and `--port` (a `ConfigError`, exit 2), instead of a banner that
points at whatever else owns the port followed by the server's own traceback.
"""

from __future__ import annotations

import errno
import socket

from close_mcp.errors import ConfigError


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), for uvicorn's `serve(sockets=[...])`."""
    # As uvicorn binds when it makes the socket itself: IPv6 for an address with a colon.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off on accepted connections only for a socket that
    # says it is TCP. Without it each answer on a kept-alive connection waited 40 ms for the
    # client's delayed ACK (headers and body leave in two writes).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except socket.gaierror as exc:
        sock.close()
        raise ConfigError(f"--host {host!r} is not an address this machine has: {exc}") from None
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use; choose another with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise ConfigError(
                f"port {port} on {host} needs privileges this user lacks; choose another with "
                "--port (1024 or above)"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    # Listening now, not when uvicorn starts: a client that reads the banner and connects at
    # once waits in the backlog instead of being refused while the server is still starting.
    sock.listen(socket.SOMAXCONN)
    sock.set_inheritable(True)
    return sock


def url(host: str, port: int, path: str = "") -> str:
    """`http://host:port/path`, with an IPv6 address in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"
