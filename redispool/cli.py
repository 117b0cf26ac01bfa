"""The command line: `redispool worker ...`, `redispool demo`, `redispool stats`. Parse, configure, run."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .errors import RedisPoolError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redispool", description="A bounded task pool over Redis.")
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="serve a pool's tasks until SIGTERM/SIGINT (then drain)")
    worker.add_argument("--url", default=None,
                        help="Redis URL (default: env REDISPOOL_URL, REDIS_URL, redis://localhost:6379/0)")
    worker.add_argument("--pool", default="default", help="pool name (default: default)")
    worker.add_argument("--concurrency", type=_positive_int, default=4, help="slots in this worker (default 4)")
    worker.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="module whose @task functions to serve; repeatable")
    worker.add_argument("--heartbeat-ttl", type=float, default=10.0, metavar="SECONDS",
                        help="seconds without a heartbeat before the worker counts as dead and its tasks are "
                             "recovered (default 10; the heartbeat interval is a fifth of it)")
    worker.add_argument("--execution", choices=("thread", "process"), default="thread",
                        help="run tasks in worker threads (default) or in killable child processes")
    worker.add_argument("--log-level", default="INFO", help="logging level (default INFO)")

    demo = sub.add_parser("demo", help="run the pool end to end on REDISPOOL_URL or an embedded Redis")
    demo.add_argument("--tasks", type=_positive_int, default=3000, help="tasks to submit (default 3000)")
    demo.add_argument("--workers", type=int, default=2,
                      help="worker processes to start (default 2; 0 = use workers already serving --pool)")
    demo.add_argument("--pool", default=None, help="pool name (default: a fresh demo-<pid> pool)")
    demo.add_argument("--concurrency", type=_positive_int, default=4, help="slots per worker (default 4)")

    stats = sub.add_parser("stats", help="print a pool's state as JSON")
    stats.add_argument("--url", default=None)
    stats.add_argument("--pool", default="default")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "worker":
            from .worker import Worker

            logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            return Worker(args.pool, args.url, concurrency=args.concurrency, imports=args.imports,
                          heartbeat_ttl=args.heartbeat_ttl, execution=args.execution).run()
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(tasks=args.tasks, workers=args.workers, concurrency=args.concurrency, pool_name=args.pool)
        if args.command == "stats":
            from .pool import Pool

            with Pool(args.pool, args.url) as pool:
                print(json.dumps({**pool.stats(), "tasks": pool.tasks(), "workers": pool.workers()}, indent=2))
            return EXIT_OK
    except RedisPoolError as exc:
        print(f"redispool: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
