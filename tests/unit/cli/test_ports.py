"""`close_mcp.cli.ports.listen`: the socket `serve --transport http` and `sandbox` hand to uvicorn.

uvicorn serves a given socket with `loop.create_server(sock=...)`, and asyncio turns Nagle's
algorithm off on each accepted connection only when the listening socket says it is TCP
(`proto == IPPROTO_TCP`). A socket made without it left Nagle on: on a kept-alive connection a
response written in two parts (headers, then body) waited for the client's delayed ACK, 40 ms
an answer (the sandbox answered 25 requests a second; `bench/keepalive.py` prints the figure).
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from close_mcp.cli.ports import listen


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


HOSTS = [
    "127.0.0.1",
    pytest.param(
        "::1",
        marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here"),
    ),
]


@pytest.mark.parametrize("host", HOSTS)
def test_connections_accepted_on_the_socket_send_without_delay(host: str) -> None:
    async def accepted_nodelay() -> int:
        sock = listen(host, 0)
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                conn = transport.get_extra_info("socket")
                seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        async with server:
            port = sock.getsockname()[1]
            _, writer = await asyncio.open_connection(host, port)
            value = await seen
            writer.close()
        return value

    assert asyncio.run(accepted_nodelay()) != 0


def test_the_socket_is_bound_listening_and_tcp() -> None:
    sock = listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.type == socket.SOCK_STREAM
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert sock.get_inheritable()
    finally:
        sock.close()
