"""What the DBA commands print while a shard moves: one line per phase, redrawn in place on a terminal."""
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sharding.moves import MoveProgress


class Stream(Protocol):
    """A management command's stdout, sys.stdout or a StringIO."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(nbytes) < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} GB"


class MovePrinter:
    """`shard 17 worker1->worker3  copying   [#########-----------]  45%  1200/2650 rows  lag 12.0 kB`."""

    WIDTH = 20

    def __init__(self, stream: Stream, *, quiet: bool = False) -> None:
        self.stream, self.quiet = stream, quiet
        self.interactive = getattr(stream, "isatty", lambda: False)()
        self.last_phase: str | None = None
        self.started = time.monotonic()

    def __call__(self, update: "MoveProgress") -> None:
        if self.quiet:
            return
        move = update.move
        if update.phase != self.last_phase and self.last_phase is not None and self.interactive:
            self.stream.write("\n")
        total = max(update.rows_total, 1)
        done = min(update.rows_copied, total)
        bar = "#" * (self.WIDTH * done // total) + "-" * (self.WIDTH - self.WIDTH * done // total)
        line = (f"shard {move.shard} {move.source}->{move.target}  {update.phase:<12} [{bar}] "
                f"{100 * done // total:3d}%  {update.rows_copied}/{update.rows_total} rows")
        if update.lag_bytes is not None:
            line += f"  lag {_size(update.lag_bytes)}"
        if move.write_pause_ms is not None and update.phase in ("done", "cleaning up"):
            line += f"  write pause {move.write_pause_ms:.0f} ms"
        if self.interactive:
            self.stream.write("\r" + line.ljust(100))
        elif update.phase != self.last_phase:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.last_phase = update.phase

    def finish(self) -> None:
        if self.interactive and self.last_phase is not None:
            self.stream.write("\n")
        self.last_phase = None
