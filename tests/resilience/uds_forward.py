"""Forward a Unix socket to a TCP port: how a test reaches a server inside a network namespace.

    ip netns exec NS python -m tests.resilience.uds_forward /path/app.sock 127.0.0.1 8000

Run inside the namespace, it accepts on the socket file (which every namespace sees) and connects to the
server on the namespace's own loopback, so the test talks to the server without any address outside the
namespaces. It carries only the test's requests; the server's own traffic (to its database) does not pass
here, so cutting the namespace's network is unaffected by it.
"""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(path: str, host: str, port: int) -> None:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_unix_server(accept, path)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
