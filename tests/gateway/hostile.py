"""A small hostile "Jupyter gateway" on 127.0.0.1, as a malicious or broken server would be: it speaks just enough
of the kernels API (kernelspecs, create, get, delete, interrupt, the kernel's websocket) to be used by a task, and
misbehaves on purpose: it answers a create with a kernel id of its choosing (``--kernel-id``), and on the kernel's
websocket it sends one text frame that declares ``--declare`` bytes and pushes up to ``--push`` of them.

Every request it receives is appended to ``--log`` as ``<METHOD> <target> auth=<scheme>`` (the raw request target,
before any normalisation), and, when the websocket ends, ``SENT <bytes>``: how much of the frame the client took.
It exits by itself after ``--lifetime`` seconds. Written on raw asyncio streams, not a web framework, so that it
can send what a well-behaved server never would. Run: ``python -m tests.gateway.hostile --port ... --log ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port, stop_group
from tests.processes import wait_for

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VALID_ID = "6c4f5a6e-2b0e-4a53-9d39-0d3c1d7a9e10"
SPECS = {"default": "python3", "kernelspecs": {"python3": {"name": "python3", "spec": {
    "language": "python", "display_name": "Python 3", "argv": []}}}}


class _Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.log = Path(args.log)

    def note(self, line: str) -> None:
        with self.log.open("a") as f:
            f.write(line + "\n")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                auth = headers.get("authorization", "").split(" ")[0] or "-"
                self.note(f"{method} {target} auth={auth}")
                if headers.get("upgrade", "").lower() == "websocket":
                    await self.websocket(headers, reader, writer)
                    return
                status, payload = self.answer(method, target, body)
                data = json.dumps(payload).encode() if payload is not None else b""
                writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                             "\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def answer(self, method: str, target: str, body: bytes) -> tuple[str, object]:
        kernel_id = self.args.kernel_id
        if method == "GET" and target == "/api/kernelspecs":
            return "200 OK", SPECS
        if method == "POST" and target == "/api/kernels":
            name = json.loads(body or b"{}").get("name", "python3")
            return "201 Created", {"id": kernel_id, "name": name, "execution_state": "starting"}
        if target.startswith(f"/api/kernels/{kernel_id}"):
            if method == "DELETE":
                return "204 No Content", None
            if method == "GET":
                return "200 OK", {"id": kernel_id, "name": "python3", "execution_state": "idle"}
            return "204 No Content", None
        return "404 Not Found", {"message": "no such thing"}

    async def websocket(self, headers: dict[str, str], reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + _WS_GUID).encode()).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        declare, push = self.args.declare, min(self.args.push, self.args.declare)
        writer.write(bytes([0x81, 127]) + declare.to_bytes(8, "big"))  # FIN + text, 64-bit length, no mask
        sent = 0
        chunk = b"a" * 65536
        try:
            await writer.drain()
            while sent < push:
                piece = chunk[: push - sent]
                writer.write(piece)
                await writer.drain()
                sent += len(piece)
            while await reader.read(65536):  # hold the socket (the frame is not over): the client decides
                pass
        except ConnectionError:
            pass
        finally:
            self.note(f"SENT {sent}")

    async def main(self) -> None:
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.args.port)
        self.note("READY")
        async with server:
            await asyncio.sleep(self.args.lifetime)


@dataclass
class Hostile:
    """A running hostile gateway: its URL, its process (a session leader) and its request log."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def requests(self) -> list[str]:
        """``<METHOD> <target>`` of every request received, in order."""
        return [line.rsplit(" auth=", 1)[0] for line in self.lines() if " auth=" in line]

    def sent(self) -> int:
        """Bytes of the big frame the client took (the last websocket's); -1 if no websocket ended yet."""
        counts = [int(line.split()[1]) for line in self.lines() if line.startswith("SENT ")]
        return counts[-1] if counts else -1

    def stop(self) -> None:
        stop_group(self.proc, grace=5.0)


def start_hostile(folder: Path, *, kernel_id: str = VALID_ID, declare: int = 0, push: int = 0,
                  lifetime: float = 300.0) -> Hostile:
    """Start the hostile gateway in its own process group; returns once it listens (30 s at most)."""
    port = free_port()
    log = folder / f"hostile-{port}.log"
    cmd = [sys.executable, "-m", "tests.gateway.hostile", "--port", str(port), "--log", str(log),
           "--kernel-id", kernel_id, "--declare", str(declare), "--push", str(push), "--lifetime", str(lifetime)]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[2], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=(folder / f"hostile-{port}.err").open("wb"))
    hostile = Hostile(f"http://127.0.0.1:{port}", proc, log)
    try:
        wait_for(lambda: proc.poll() is not None or "READY" in hostile.lines(), 30, "the hostile gateway to listen")
    except BaseException:
        hostile.stop()
        raise
    if proc.poll() is not None:
        raise RuntimeError(f"the hostile gateway exited: {(folder / f'hostile-{port}.err').read_text()[-2000:]}")
    return hostile


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--kernel-id", default=VALID_ID)
    parser.add_argument("--declare", type=int, default=0)
    parser.add_argument("--push", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=300.0)
    asyncio.run(_Server(parser.parse_args()).main())
