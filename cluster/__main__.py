"""Command line: python -m cluster {up,down,status,psql,add-node,remove-node,destroy} [--name NAME]."""
import argparse
import json
import os
import sys
from typing import NoReturn

from . import core
from .config import ENGINES, ClusterError, cluster_dir, cluster_name, find_node, load_config
from .system import pg_bindir

STATUS_COLUMNS = ("node", "role", "port", "bouncer", "postgres", "pgbouncer", "shards", "prepared")


class Parser(argparse.ArgumentParser):
    """Usage errors follow the tool's convention too: one line, exit status 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"cluster: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m cluster", description="Local sharded PostgreSQL cluster: a coordinator "
                    "and N workers, each its own server behind its own pgbouncer (transaction pooling).")
    parser.add_argument("--name", help="cluster name (default: $CLUSTER_NAME or 'dev')")
    # repeated on every subcommand; SUPPRESS keeps a value given before the subcommand
    common = Parser(add_help=False)
    common.add_argument("--name", default=argparse.SUPPRESS, help="cluster name (default: $CLUSTER_NAME or 'dev')")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", parents=[common], help="create (first time) and start every node and pgbouncer")
    p.add_argument("--workers", type=int, help="number of workers (default 2; more than configured adds workers)")
    p.add_argument("--shards", type=int, help="logical shards, fixed at creation (default 64, 1..8192)")
    p.add_argument("--engine", choices=ENGINES, help="sharding engine, fixed at creation: own (default) or citus "
                   "(every node runs the citus extension, which must be installed)")
    sub.add_parser("down", parents=[common], help="stop every node and pgbouncer, keeping the data")
    p = sub.add_parser("status", parents=[common], help="show nodes, shards held and pending prepared transactions")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p = sub.add_parser("psql", parents=[common], help="run psql on a node; psql arguments go after --",
                       epilog="example: python -m cluster psql worker1 -- -c 'select 1'")
    p.add_argument("node", help="coordinator, worker1, ...")
    p.add_argument("--bouncer", action="store_true", help="connect through the node's pgbouncer")
    sub.add_parser("add-node", parents=[common], help="create, migrate and register a new worker (no shards yet); "
                   "prints its name on the last line")
    p = sub.add_parser("remove-node", parents=[common], help="forget an empty worker, stop it and delete its data")
    p.add_argument("node", help="the worker, e.g. worker3 (it must hold no shard: `manage.py drain_node` first)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = sub.add_parser("destroy", parents=[common], help="stop everything and delete all cluster data")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # everything after `--` belongs to psql, so argparse never sees it
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if extra and args.command != "psql":
        parser.error("arguments after -- are only accepted by psql")
    try:
        return COMMANDS[args.command](args, extra)
    except ClusterError as e:
        print(f"cluster: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cluster: error: interrupted", file=sys.stderr)
        return 1


def cmd_up(args: argparse.Namespace, _extra: list[str]) -> int:
    core.up(args.name, workers=args.workers, shards=args.shards, engine=args.engine)
    return 0


def cmd_down(args: argparse.Namespace, _extra: list[str]) -> int:
    core.down(args.name)
    return 0


def cmd_status(args: argparse.Namespace, _extra: list[str]) -> int:
    rows = core.status(args.name)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table([STATUS_COLUMNS, *map(_status_cells, rows)])
        moves = core.shard_moves(args.name)
        if moves:
            print("\nshard moves (in progress, then the latest):")
            print_table([MOVE_COLUMNS, *map(_move_cells, moves)])
    return 0 if all(r["postgres"] == "up" and r["bouncer"] == "up" for r in rows) else 1


def _status_cells(row: dict) -> tuple:
    shards = "-" if row["shards"] is None else f"{row['shards']} ({row['shard_ranges'] or 'none'})"
    if row["prepared_xacts"] is None:
        prepared = "?"
    elif row["prepared_xacts"]:
        prepared = f"{row['prepared_xacts']} (oldest {row['oldest_prepared_age_s']:.0f}s)"
    else:
        prepared = "0"
    return (row["name"], row["role"], row["port"], row["bouncer_port"], row["postgres"], row["bouncer"],
            shards, prepared)


MOVE_COLUMNS = ("move", "shard", "from", "to", "state", "rows", "lag", "write pause", "duration")


def _move_cells(move: dict) -> tuple:
    rows = f"{move['rows_copied']}/{move['rows_total']}" if move["rows_total"] else str(move["rows_copied"])
    lag = "-" if move["lag_bytes"] is None else f"{move['lag_bytes']} B"
    pause = "-" if move["write_pause_ms"] is None else f"{move['write_pause_ms']:.1f} ms"
    return (move["id"], move["shard"], move["source"], move["target"], move["state"], rows, lag, pause,
            f"{float(move['duration_s']):.1f} s")


def print_table(rows: list) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())


def cmd_psql(args: argparse.Namespace, extra: list[str]) -> int:
    cfg = load_config(args.name)
    node = find_node(cfg, args.node)
    psql = pg_bindir() / "psql"
    if not os.access(psql, os.X_OK):
        raise ClusterError(f"{psql} not found: install it with `apt-get install postgresql-client-15`")
    port = node["bouncer_port"] if args.bouncer else node["port"]
    env = dict(os.environ, PGPASSWORD=cfg["password"])
    os.execve(psql, [str(psql), "-h", node["host"], "-p", str(port), "-U", cfg["user"], "-d", cfg["database"],
                     *extra], env)


def cmd_add_node(args: argparse.Namespace, _extra: list[str]) -> int:
    node = core.add_node(args.name)
    print(node["name"])
    return 0


def cmd_remove_node(args: argparse.Namespace, _extra: list[str]) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise ClusterError(f"remove-node needs confirmation and stdin is not a terminal: pass --yes to "
                               f"remove {args.node}")
        if input(f"Remove {args.node} and delete its data? [y/N] ").strip().lower() not in ("y", "yes"):
            print("not removed")
            return 1
    core.remove_node(args.name, args.node)
    return 0


def cmd_destroy(args: argparse.Namespace, _extra: list[str]) -> int:
    name = cluster_name(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise ClusterError(f"destroy needs confirmation and stdin is not a terminal: pass --yes to "
                               f"delete cluster {name!r}")
        prompt = f"Destroy cluster {name!r} and delete all its data under {cluster_dir(name)}? [y/N] "
        if input(prompt).strip().lower() not in ("y", "yes"):
            print("not destroyed")
            return 1
    core.destroy(name)
    return 0


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "psql": cmd_psql, "destroy": cmd_destroy,
            "add-node": cmd_add_node, "remove-node": cmd_remove_node}

if __name__ == "__main__":
    sys.exit(main())
