"""A fault-injecting TCP proxy for PostgreSQL connections (stdlib only, asyncio): `make chaos` puts one listener in
front of each node's pgbouncer and tells it, while the suite runs, which fault to inject.

    .venv/bin/python -m benchmarks.chaos_proxy --listen worker1=127.0.0.1:0:127.0.0.1:44433 \
        [--listen NAME=HOST:PORT:UPSTREAM_HOST:UPSTREAM_PORT ...] [--control-port 0] [--max-seconds 1800]

It prints one JSON line once it listens: {"control": PORT, "listeners": {NAME: PORT}} (port 0 = a free port), and
stops by itself after --max-seconds. Faults, per listener, set over the control port (one JSON object per line,
answered with one JSON line; `ProxyControl` below is the client):

  {"cmd": "delay", "listener": "worker2", "seconds": 0.2}
        every chunk is held back that long, in each direction (a slow link; order is kept, chunks pipeline)
  {"cmd": "cut", "listener": "worker1", "pattern": "^PREPARE TRANSACTION", "when": "after",
   "max": 10, "probability": 0.5}
        the client->server bytes are read as PostgreSQL messages; when a simple-query ('Q') message matches the
        regular expression (for at most `max` matches, each with `probability`), both sockets are closed:
        `before`  without forwarding the query (the server never sees it),
        `after`   once the server has answered it (the server did it, the client never hears so),
        `alternate` after, before, after, ... by match
  {"cmd": "clear", "listener": "worker1"}   (no listener: all) back to a plain proxy
  {"cmd": "stats"}   connections, bytes, matches and cuts per listener
  {"cmd": "quit"}

The startup phase is followed (SSLRequest/GSSENCRequest and the one-byte answer, the startup packet); if the
server accepts TLS the connection is passed through unparsed. Extended-protocol messages ('P', 'B', ...) are
forwarded as they are; only 'Q' is matched (psycopg2 sends every statement, PREPARE TRANSACTION and COMMIT
PREPARED included, as a simple query).
"""
import argparse
import asyncio
import json
import random
import re
import socket
import struct
import sys
import time

SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
UPSTREAM_CONNECT_TIMEOUT = 5.0
AFTER_REPLY_TIMEOUT = 2.0  # `after`: cut even if the server does not answer within this
READ_SIZE = 65536


class Rule:
    def __init__(self, pattern, when="after", max=None, probability=1.0):  # noqa: A002 - the control field's name
        if when not in ("before", "after", "alternate"):
            raise ValueError(f"when must be before, after or alternate, not {when!r}")
        self.pattern, self.regex = pattern, re.compile(pattern, re.IGNORECASE | re.DOTALL)
        self.when, self.max, self.probability = when, max, float(probability)
        self.matches = 0
        self.cuts = 0

    def decide(self, query, rng):
        """None to let the query through, else 'before' or 'after'."""
        if not self.regex.search(query):
            return None
        self.matches += 1
        if self.max is not None and self.cuts >= self.max:
            return None
        if rng.random() >= self.probability:
            return None
        self.cuts += 1
        if self.when == "alternate":
            return "after" if self.cuts % 2 else "before"
        return self.when

    def describe(self):
        return {"pattern": self.pattern, "when": self.when, "max": self.max, "probability": self.probability,
                "matches": self.matches, "cuts": self.cuts}


class Listener:
    def __init__(self, name, host, port, upstream_host, upstream_port):
        self.name, self.host, self.port = name, host, port
        self.upstream = (upstream_host, upstream_port)
        self.delay = 0.0
        self.rules = []
        self.connections = set()
        self.server = None
        self.stats = {"accepted": 0, "upstream_failures": 0, "bytes_up": 0, "bytes_down": 0, "cuts": 0}
        self.cut_log = []  # (unix time, when, first 120 characters of the query)

    def clear(self):
        self.delay = 0.0
        self.rules = []

    def describe(self):
        return {"port": self.port, "upstream": list(self.upstream), "delay": self.delay,
                "active": len(self.connections), **self.stats, "rules": [r.describe() for r in self.rules],
                "cut_log": self.cut_log[-50:]}


class Pipe:
    """One direction: chunks are written in order, each no sooner than `delay` after it was read."""

    def __init__(self, writer, listener):
        self.writer, self.listener = writer, listener
        self.queue = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    def send(self, data):
        self.queue.put_nowait((time.monotonic() + self.listener.delay, data))

    def finish(self):
        self.queue.put_nowait((0.0, None))

    async def _run(self):
        try:
            while True:
                due, data = await self.queue.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.writer.write(data)
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            _close(self.writer)


def _close(writer, abort=False):
    try:
        if abort:
            writer.transport.abort()
        else:
            writer.close()
    except Exception:  # noqa: BLE001 - closing twice, or a transport already gone
        pass


class Connection:
    def __init__(self, listener, rng, client_reader, client_writer):
        self.listener, self.rng = listener, rng
        self.client_reader, self.client_writer = client_reader, client_writer
        self.parsing = True
        self.startup = True  # the next client message has no type byte
        self.awaiting_ssl_answer = False
        self.buffer = bytearray()
        self.cut_when_answered = None  # the query whose answer ends the connection (`after`)
        self.closed = False

    async def run(self):
        listener = self.listener
        listener.stats["accepted"] += 1
        try:
            server_reader, server_writer = await asyncio.wait_for(
                asyncio.open_connection(*listener.upstream), UPSTREAM_CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            listener.stats["upstream_failures"] += 1
            _close(self.client_writer, abort=True)
            return
        self.server_writer = server_writer
        self.up = Pipe(server_writer, listener)
        self.down = Pipe(self.client_writer, listener)
        listener.connections.add(self)
        try:
            await asyncio.gather(self._client_to_server(), self._server_to_client(server_reader))
        finally:
            listener.connections.discard(self)
            await asyncio.gather(self.up.task, self.down.task, return_exceptions=True)

    def cut(self, when, query):
        """Close both sockets at once, unflushed."""
        if self.closed:
            return
        self.closed = True
        listener = self.listener
        listener.stats["cuts"] += 1
        listener.cut_log.append((round(time.time(), 3), when, query[:120]))
        for pipe in (self.up, self.down):
            while not pipe.queue.empty():
                pipe.queue.get_nowait()
            pipe.finish()
        _close(self.client_writer, abort=True)
        _close(self.server_writer, abort=True)

    async def _client_to_server(self):
        try:
            while not self.closed:
                data = await self.client_reader.read(READ_SIZE)
                if not data:
                    break
                self.listener.stats["bytes_up"] += len(data)
                if self.cut_when_answered is not None:
                    continue  # the connection ends with the answer to that query: nothing more goes through
                if not self.parsing:
                    self.up.send(data)
                    continue
                self.buffer += data
                self._forward_whole_messages()
        except (ConnectionError, OSError):
            pass
        finally:
            if not self.closed:
                if self.buffer:
                    self.up.send(bytes(self.buffer))
                self.up.finish()

    def _forward_whole_messages(self):
        out = bytearray()
        while not self.closed:
            if self.startup:
                if len(self.buffer) < 8:
                    break
                length, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < length:
                    break
                out += self.buffer[:length]
                del self.buffer[:length]
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    self.awaiting_ssl_answer = True  # the server answers one byte; then a startup packet again
                else:
                    self.startup = False
                continue
            if len(self.buffer) < 5:
                break
            kind = self.buffer[0:1]
            (length,) = struct.unpack("!i", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                break
            message = bytes(self.buffer[:1 + length])
            del self.buffer[:1 + length]
            if kind == b"Q":
                query = message[5:-1].decode("utf-8", "replace").lstrip()
                decision = self._decide(query)
                if decision == "before":
                    if out:
                        self.up.send(bytes(out))
                    self.cut("before", query)
                    return
                if decision == "after":
                    self.cut_when_answered = query
                    out += message
                    self.up.send(bytes(out))
                    asyncio.get_event_loop().call_later(AFTER_REPLY_TIMEOUT, self._cut_after_timeout, query)
                    self.buffer.clear()  # nothing more goes to the server
                    return
            out += message
        if out:
            self.up.send(bytes(out))

    def _decide(self, query):
        for rule in self.listener.rules:
            decision = rule.decide(query, self.rng)
            if decision:
                return decision
        return None

    def _cut_after_timeout(self, query):
        if not self.closed and self.cut_when_answered == query:
            self.cut("after (no answer)", query)

    async def _server_to_client(self, server_reader):
        try:
            while not self.closed:
                data = await server_reader.read(READ_SIZE)
                if not data:
                    break
                if self.cut_when_answered is not None:
                    self.cut("after", self.cut_when_answered)
                    break
                self.listener.stats["bytes_down"] += len(data)
                if self.awaiting_ssl_answer:
                    self.awaiting_ssl_answer = False
                    if data[:1] in (b"S", b"G"):
                        self.parsing = False  # encrypted from here on: pass it through
                self.down.send(data)
        except (ConnectionError, OSError):
            pass
        finally:
            if not self.closed:
                self.down.finish()


class Proxy:
    def __init__(self, listeners, seed=None):
        self.listeners = {listener.name: listener for listener in listeners}
        self.rng = random.Random(seed)
        self.stopped = None

    async def start(self, control_host="127.0.0.1", control_port=0):
        self.stopped = asyncio.Event()
        for listener in self.listeners.values():
            listener.server = await asyncio.start_server(
                lambda r, w, lst=listener: self._accept(lst, r, w), listener.host, listener.port,
                reuse_address=True)
            listener.port = listener.server.sockets[0].getsockname()[1]
        self.control = await asyncio.start_server(self._control, control_host, control_port)
        self.control_port = self.control.sockets[0].getsockname()[1]

    async def _accept(self, listener, reader, writer):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await Connection(listener, self.rng, reader, writer).run()

    async def _control(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    answer = self.command(json.loads(line))
                except Exception as exc:  # noqa: BLE001 - a bad command is answered, not fatal
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write((json.dumps(answer) + "\n").encode())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            _close(writer)

    def command(self, message):
        cmd = message.get("cmd")
        if cmd == "ping":
            return {"ok": True}
        if cmd == "stats":
            return {"ok": True, "listeners": {name: lst.describe() for name, lst in self.listeners.items()}}
        if cmd == "quit":
            self.stopped.set()
            return {"ok": True}
        if cmd == "clear" and not message.get("listener"):
            for listener in self.listeners.values():
                listener.clear()
            return {"ok": True}
        listener = self.listeners[message["listener"]]
        if cmd == "clear":
            listener.clear()
        elif cmd == "delay":
            listener.delay = max(0.0, float(message["seconds"]))
        elif cmd == "cut":
            listener.rules.append(Rule(message["pattern"], message.get("when", "after"), message.get("max"),
                                       message.get("probability", 1.0)))
        else:
            raise ValueError(f"unknown command {cmd!r}")
        return {"ok": True, "listener": listener.describe()}

    async def serve(self, max_seconds):
        try:
            await asyncio.wait_for(self.stopped.wait(), max_seconds)
        except asyncio.TimeoutError:
            pass
        for server in [self.control, *(lst.server for lst in self.listeners.values())]:
            server.close()
        for listener in self.listeners.values():
            for connection in list(listener.connections):
                connection.cut("shutdown", "")


class ProxyControl:
    """The orchestrator's side of the control port: one JSON command, one JSON answer."""

    def __init__(self, port, host="127.0.0.1"):
        self.address = (host, port)

    def send(self, cmd, **fields):
        with socket.create_connection(self.address, timeout=10) as sock:
            sock.sendall((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
        if not answer.get("ok"):
            raise RuntimeError(f"proxy refused {cmd}: {answer.get('error')}")
        return answer


def parse_listen(text):
    name, _, rest = text.partition("=")
    host, port, up_host, up_port = rest.rsplit(":", 3)
    return Listener(name, host, int(port), up_host, int(up_port))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", action="append", required=True, type=parse_listen,
                        help="NAME=HOST:PORT:UPSTREAM_HOST:UPSTREAM_PORT (PORT 0: a free port)")
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=1800, help="stop by itself after this long")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the cut probabilities")
    args = parser.parse_args(argv)

    async def run():
        proxy = Proxy(args.listen, seed=args.seed)
        await proxy.start(control_port=args.control_port)
        print(json.dumps({"control": proxy.control_port,
                          "listeners": {name: lst.port for name, lst in proxy.listeners.items()}}), flush=True)
        await proxy.serve(args.max_seconds)

    asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
