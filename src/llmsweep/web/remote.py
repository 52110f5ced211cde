"""Operations on runs, executed where the runs live: on this machine, or on a cluster's login
node over SSH. The web front end calls them the same way on both (an argument list, never a
shell line built from user text) and maps their exit status to an HTTP status.

Usage: python -m llmsweep.web.remote --workflow=DIR --workdir=DIR [OPTIONS] -- OP [ARGS]
Options: --profile=NAME (launch), --limit=BYTES (cat: the first bytes only).
Ops: defaults, validate (config YAML on stdin), launch RUN (config on stdin),
     supervise RUN ARGV (internal), progress RUN, queue RUN, cancel RUN JOBID, stop RUN,
     ls RUN [PATH], cat RUN PATH, monitoring RUN, runs.
Each option is one word, --name=value, whatever the value holds (not argparse: it would
drop a value of "--"). Everything after the first `--` is taken as it is, never as an option:
run names and paths come from users, and "-h" or "--workdir=/elsewhere" there is a run or a
path of that name.
Prints JSON (cat prints the file). Exit status: 0 done, 2 bad request, 3 refused,
4 not found, 5 conflict.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmsweep.web import files, launch, monitoring, progress, queue, runs_config
from llmsweep.web.failure import BAD, Failure
from llmsweep.web.workspace import Workspace

USAGE = __doc__.split("Usage: ", 1)[1].split("\n", 1)[0]


@dataclass
class Command:
    """The command line, parsed: where (the options), the operation and its arguments."""

    workflow: Path
    workdir: Path
    op: str
    args: list[str] = field(default_factory=list)
    profile: str = "default"
    limit: int = 0


def parse(argv: list[str]) -> Command:
    """The options (--name=value words) before the first `--`, the operation and its
    arguments after it, as they are. Not in this form: a bad request, with the usage."""
    if "--" not in argv:
        raise Failure(BAD, f"the operation goes after --; usage: {USAGE}")
    cut = argv.index("--")
    options = {}
    for word in argv[:cut]:
        name, eq, value = word.partition("=")
        if name not in ("--workflow", "--workdir", "--profile", "--limit") or not eq:
            raise Failure(BAD, f"unknown option {word!r}; usage: {USAGE}")
        options[name[2:]] = value
    if "workflow" not in options or "workdir" not in options or cut == len(argv) - 1:
        raise Failure(BAD, f"usage: {USAGE}")
    try:
        limit = int(options.get("limit", "0"))
    except ValueError:
        raise Failure(BAD, f"--limit: a number of bytes, not {options['limit']!r}") from None
    where = Path(options["workflow"]), Path(options["workdir"])
    profile = options.get("profile", "default")
    return Command(*where, argv[cut + 1], argv[cut + 2 :], profile, limit)


def operations(ws: Workspace, args: Command) -> dict[str, Callable[[], dict]]:
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


def dispatch(ws: Workspace, args: Command) -> int:
    a = args.args
    if args.op == "supervise":  # supervise RUN ARGV
        return launch.supervise(ws, a[0], a[1:])
    if args.op == "cat":
        return cat(ws, a[0], a[1], args.limit)
    ops = operations(ws, args)
    if args.op not in ops:
        raise Failure(BAD, f"unknown operation {args.op!r}")
    print(json.dumps(ops[args.op]()))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    op = "?"
    try:
        args = parse(argv)
        op = args.op
        return dispatch(Workspace.at(args.workflow, args.workdir), args)
    except IndexError:
        print(json.dumps({"error": f"{op}: missing argument"}))
        return BAD
    except Failure as exc:
        print(json.dumps({"error": str(exc), **exc.extra}))
        return exc.status


if __name__ == "__main__":
    sys.exit(main())
