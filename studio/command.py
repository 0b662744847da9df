"""``nst serve``: the web studio and its job API."""
from __future__ import annotations

from pathlib import Path

from engine.errors import UsageError
from engine.options import add_count


def _default_data() -> Path:
    import os
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nst" / "studio"


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="the web studio: a page and a job API",
                       description="Serve the studio: a page where a picture forms as you watch, and the JSON API it "
                                   "uses (documented at /docs). Jobs wait in a bounded line; finished ones are kept "
                                   "in --data across restarts.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (this machine only by default)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port, 1-65535")
    p.add_argument("--data", default=str(_default_data()), help="where jobs and pictures are kept")
    add_count(p, "--workers", default=1, help="jobs run at once, each with its own engine")
    add_count(p, "--queue", default=8, help="jobs that may wait; more are answered 429")
    add_count(p, "--threads", help="CPU threads of each engine (default: the cores shared evenly)")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto")
    add_count(p, "--max-upload-mb", default=25, help="largest request, MB; larger ones are answered 413")
    p.add_argument("--preview-interval", type=_seconds_or_days, default=1.0, metavar="S",
                   help="seconds between previews of a running job, as far as its evaluations' pace allows")
    add_count(p, "--keep", at_least=0, default=0, metavar="N",
              help="finished jobs kept with their pictures, newest first; older ones are removed (0: all)")
    p.add_argument("--keep-days", type=_seconds_or_days, default=0, metavar="D",
                   help="finished jobs older than this many days are removed with their pictures (0: never)")
    p.add_argument("--no-warm", action="store_true", help="do not run a tiny job at start to load the sessions")
    p.set_defaults(run=run)


def _port(text: str) -> int:
    import argparse
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: between 1 and 65535")
    return port


def _seconds_or_days(text: str) -> float:
    """A finite number, 0 or more (argparse says which option in its one line)."""
    import argparse
    import math
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, 0 or more")
    return value


def run(args) -> int:
    # imported here: `stylize` and the rest never load the web stack (the `web` extra)
    try:
        import uvicorn

        from .app import create_app
        from .jobs import Studio
    except ImportError as exc:
        raise UsageError(f"serve needs the web extra (pip install -e \".[web]\"): {exc}") from None
    import logging
    import os
    import socket
    import sqlite3
    try:   # a port in use is one line and status 1, before any engine loads
        socket.create_server((args.host, args.port)).close()
    except OSError as exc:
        raise OSError(f"cannot listen on {args.host}:{args.port}: {os.strerror(exc.errno) if exc.errno else exc}") \
            from None
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    data = Path(args.data).expanduser()
    try:
        studio = Studio(data, workers=args.workers, queue_size=args.queue, threads=args.threads,
                        provider=args.provider, warm=not args.no_warm, preview_interval=args.preview_interval,
                        keep=args.keep, keep_days=args.keep_days)
    except sqlite3.Error as exc:
        raise OSError(f"{data}: the job store cannot be opened ({exc})") from None
    print(f"nst studio: http://{args.host}:{args.port}/ (data in {data}; the API at /docs)", flush=True)
    # a followed job's event stream stays open while it runs: on Ctrl-C give streams 3 s, then stop the
    # jobs (a running one keeps its best picture)
    uvicorn.run(create_app(studio, max_upload_mb=args.max_upload_mb), host=args.host, port=args.port,
                log_level="warning", timeout_graceful_shutdown=3)
    return 0
