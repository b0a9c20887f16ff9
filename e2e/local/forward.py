"""Forward a TCP port of this network namespace into another one.

The local cluster lives in its own network namespace, so nothing it does
(pod and service addresses, kube-proxy's iptables rules) reaches the machine's
own network. Users and tests still want `kubectl` on 127.0.0.1: this process
listens here, then moves itself into the cluster's namespace, where every
connection it opens from then on lands. A socket keeps the namespace it was
created in, so the listener stays outside.

usage: python forward.py LISTEN_HOST:PORT /run/netns/NAME TARGET_HOST:PORT
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import sys

CLONE_NEWNET = 0x40000000


def enter_netns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(listener: socket.socket, target_host: str, target_port: int) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(target_host, target_port)
        except OSError as e:
            print(f"forward: cannot reach {target_host}:{target_port}: {e}", file=sys.stderr, flush=True)
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, upstream_w), pipe(upstream_r, client_w))

    server = await asyncio.start_server(handle, sock=listener)
    async with server:
        await server.serve_forever()


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    listen, netns, target = argv
    host, port = split_host_port(listen)
    listener = socket.create_server((host, port), reuse_port=False)
    enter_netns(netns)
    target_host, target_port = split_host_port(target)
    print(f"forward: {host}:{port} -> {target_host}:{target_port} in {netns}", flush=True)
    asyncio.run(serve(listener, target_host, target_port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
