"""`llmsweep web`: serve the front end with waitress, bound to an explicit address."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[3]  # the workflow this package belongs to


def serve(
    host: str,
    port: int,
    workdir: str,
    workflow: str | None = None,
    known_hosts: str | None = None,
    threads: int = 8,
) -> None:
    from waitress import create_server

    from llmsweep.web.app import create_app

    workflow = workflow or str(CHECKOUT)
    if not (Path(workflow) / "Snakefile").exists():
        sys.exit(f"llmsweep web: no Snakefile in {workflow} (use --workflow)")
    token = secrets.token_urlsafe(32)
    app = create_app(
        {"token": token, "workflow": workflow, "workdir": workdir, "known_hosts": known_hosts}
    )
    server = create_server(app, host=host, port=port, threads=threads, ident="llmsweep")
    bound = server.effective_port
    names = {f"{host}:{bound}"} | ({f"localhost:{bound}"} if host == "127.0.0.1" else set())
    app.config["ALLOWED_HOSTS"] = names
    print(f"llmsweep web: serving {Path(workdir).resolve()} (workflow {workflow})", flush=True)
    print(f"llmsweep web: open http://{host}:{bound}/?token={token}", flush=True)
    print("llmsweep web: Ctrl-C stops", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        app.extensions["llmsweep"].target.close()
