"""Operations on runs, executed where the runs live: on this machine, or on a cluster's login
node over SSH. The web front end calls them the same way on both (an argument list, never a
shell line built from user text) and maps their exit status to an HTTP status.

Usage: python -m llmsweep.web.remote --workflow DIR --workdir DIR OP [ARGS]
Ops: defaults, validate (config YAML on stdin), launch RUN --profile NAME (config on stdin),
     supervise RUN -- ARGV (internal), progress RUN, queue RUN, cancel RUN JOBID, stop RUN,
     ls RUN [PATH], cat RUN PATH, monitoring RUN, runs.
Prints JSON (cat prints the file). Exit status: 0 done, 2 bad request, 3 refused,
4 not found, 5 conflict.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from llmsweep.web import files, launch, monitoring, progress, queue, runs_config
from llmsweep.web.failure import BAD, Failure
from llmsweep.web.workspace import Workspace


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workflow", required=True, type=Path)
    p.add_argument("--workdir", required=True, type=Path)
    p.add_argument("op")
    p.add_argument("args", nargs="*")
    p.add_argument("--profile", default="default")
    p.add_argument("--limit", type=int, default=0)
    return p


def operations(ws: Workspace, args: argparse.Namespace) -> dict[str, Callable[[], dict]]:
    """The operations that print JSON, by name, with their arguments bound."""
    a = args.args
    return {
        "defaults": runs_config.defaults,
        "validate": lambda: runs_config.validate(sys.stdin.read()),
        "launch": lambda: launch.launch(ws, a[0], args.profile, sys.stdin.read()),
        "progress": lambda: progress.progress(ws.paths(a[0])),
        "queue": lambda: queue.queue(ws.paths(a[0])),
        "cancel": lambda: cancel(ws, a[0], a[1]),
        "stop": lambda: launch.stop(ws.paths(a[0])),
        "ls": lambda: files.ls(ws.paths(a[0]), a[1] if len(a) > 1 else ""),
        "monitoring": lambda: monitoring.links(ws.paths(a[0])),
        "runs": lambda: launch.launched_runs(ws),
    }


def cancel(ws: Workspace, run: str, job: str) -> dict:
    return queue.cancel(ws.paths(run), job)


def cat(ws: Workspace, run: str, rel: str, limit: int) -> int:
    """The file's bytes to stdout, as they are."""
    sys.stdout.buffer.write(files.cat(ws.paths(run), rel, limit or None))
    return 0


def dispatch(ws: Workspace, args: argparse.Namespace, rest: list[str]) -> int:
    a = args.args
    if args.op == "supervise":  # supervise RUN -- ARGV: argparse gives ARGV as args
        return launch.supervise(ws, a[0], a[1:] + rest)
    if args.op == "cat":
        return cat(ws, a[0], a[1], args.limit)
    ops = operations(ws, args)
    if args.op not in ops:
        raise Failure(BAD, f"unknown operation {args.op!r}")
    print(json.dumps(ops[args.op]()))
    return 0


def main(argv: list[str] | None = None) -> int:
    args, rest = parser().parse_known_args(argv)
    ws = Workspace.at(args.workflow, args.workdir)
    try:
        return dispatch(ws, args, rest)
    except IndexError:
        print(json.dumps({"error": f"{args.op}: missing argument"}))
        return BAD
    except Failure as exc:
        print(json.dumps({"error": str(exc), **exc.extra}))
        return exc.status


if __name__ == "__main__":
    sys.exit(main())
