"""A read-only dashboard of one or several searches, in a browser, live while they run.

    python -m bqnn.dashboard runs/demo                          # http://127.0.0.1:8050/
    python -m bqnn.dashboard $SCRATCH/run1 $SCRATCH/run2 --port 8060
    ssh -L 8060:localhost:8060 login-node                       # then open http://localhost:8060/ on your machine

Shows, for each run: reward per iteration with its epsilon stages and spread, the best so far, a sortable and
filterable table of candidates, a candidate's epoch curve with the pruning cut-offs and its block drawn with layer
indices, a timeline of what each rank trained when, accuracy against FLOPs with the Pareto front, and the runs side by
side. It reads search.h5 and status.json (docs/status.md) and writes nothing; every script and style comes from the
installed package (docs/dashboard.md: why Chart.js and the standard library's server). Ctrl-C stops it.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..cli import Parser

PROG = "bqnn.dashboard"


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+", metavar="DIR", help="a search's output directory (several: side by side)")
    p.add_argument("--port", type=int, default=8050, help="port (0: any free one); default 8050")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    args = p.parse_args(argv)
    from .server import make_server
    from .views import Run

    for d in args.dirs:
        if not Path(d).is_dir():
            print(f"{PROG}: error: {d} is not a directory", file=sys.stderr)
            return 2
    if not 0 <= args.port <= 65535:
        print(f"{PROG}: error: --port must be 0 to 65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        server = make_server([Run(d) for d in args.dirs], args.host, args.port)
    except OSError as e:
        print(f"{PROG}: error: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"bqnn dashboard: {len(args.dirs)} run(s) at http://{host}:{port}/ (read-only; Ctrl-C stops it)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
