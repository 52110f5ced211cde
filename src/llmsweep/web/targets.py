"""Where runs live: this machine, or a cluster's login node over SSH, behind one interface.

Both run `python -m llmsweep.web.remote ...` as an argument list. Over SSH the list is
quoted argument by argument (shlex.join) into the one command line SSH carries; no user
text is ever pasted into a shell line unquoted. SSH uses one persistent paramiko
connection, checks the server's host key against known_hosts and refuses unknown keys.
"""

from __future__ import annotations

import json
import select
import shlex
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

REMOTE = ["-m", "llmsweep.web.remote"]


class TargetError(RuntimeError):
    """The target cannot be reached or used; the message says why, for the page."""


@dataclass
class Result:
    status: int
    stdout: bytes
    stderr: str

    def json(self) -> dict:
        try:
            return json.loads(self.stdout or b"{}")
        except ValueError:
            return {"error": (self.stderr or self.stdout.decode(errors="replace"))[-2000:]}


class Target:
    kind = "?"

    def __init__(self, workflow: str, workdir: str, python: str):
        self.workflow, self.workdir, self.python = workflow, workdir, python

    def argv(self, op: str, *args: str, **options: str) -> list[str]:
        """The remote command: options as --key=value (a value is never read as an option of
        its own), then `--`, the operation and its arguments, which the remote takes as they
        are (a run or path of "-h" or "--workdir=..." is just that)."""
        argv = [self.python, *REMOTE, f"--workflow={self.workflow}", f"--workdir={self.workdir}"]
        argv += [f"--{key}={value}" for key, value in options.items()]
        argv += ["--", op, *args]
        if any("\0" in arg for arg in argv):
            raise TargetError(f"{op}: an argument holds a NUL character")
        return argv

    def call(
        self, op: str, *args: str, stdin: bytes = b"", timeout: float = 120, **options: str
    ) -> Result:
        raise NotImplementedError

    def forward(self, host: str, port: int) -> str:
        """A URL on this machine that reaches host:port as seen from the target."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"kind": self.kind, "workflow": self.workflow, "workdir": self.workdir}

    def close(self) -> None:
        pass


class LocalTarget(Target):
    kind = "local"

    def __init__(self, workflow: str, workdir: str, python: str = sys.executable):
        super().__init__(str(Path(workflow).resolve()), str(Path(workdir).resolve()), python)

    def call(self, op, *args, stdin=b"", timeout=120, **options):
        try:
            argv = self.argv(op, *args, **options)
            out = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TargetError(f"{op} took longer than {timeout} s") from None
        return Result(out.returncode, out.stdout, out.stderr.decode(errors="replace"))

    def forward(self, host, port):
        return f"http://{host}:{port}"


class SshTarget(Target):
    """A login node over SSH. Host, port, user and key default from ~/.ssh/config; the key
    may also come from the SSH agent."""

    kind = "ssh"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        user: str | None = None,
        key_file: str | None = None,
        known_hosts: str | None = None,
        workflow: str = "llmsweep",
        workdir: str | None = None,
        python: str | None = None,
        ssh_config: str | None = None,
    ):
        import paramiko

        self.paramiko = paramiko
        conf = self._ssh_config(host, ssh_config)
        self.host = conf.get("hostname", host)
        self.port = int(port or conf.get("port", 22))
        self.user = user or conf.get("user") or _local_user()
        keys = [key_file] if key_file else conf.get("identityfile", [])
        self.known_hosts = known_hosts or str(Path.home() / ".ssh" / "known_hosts")
        # Relative paths are relative to the remote user's home (where SSH commands start).
        super().__init__(workflow, workdir or workflow, python or f"{workflow}/.venv/bin/python")
        self.keys = [str(Path(k).expanduser()) for k in keys]
        self._lock = threading.Lock()
        self._forwards: dict[tuple[str, int], str] = {}
        self.client = self._connect()

    def _connect(self):
        paramiko = self.paramiko
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(self.known_hosts)
        except FileNotFoundError:
            pass
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                self.host,
                self.port,
                username=self.user,
                key_filename=self.keys or None,
                look_for_keys=not self.keys,
                allow_agent=True,
                timeout=15,
                banner_timeout=15,
                auth_timeout=15,
            )
        except paramiko.BadHostKeyException:
            raise TargetError(
                f"the host key of {self.host}:{self.port} does NOT match the one in "
                f"{self.known_hosts}: refusing to connect (the key changed, or someone is in "
                "between)"
            ) from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise TargetError(
                    f"unknown host key: {self.host}:{self.port} is not in {self.known_hosts}. "
                    "Check the server's key fingerprint and add it (log in once with ssh, "
                    "or ssh-keyscan); llmsweep never accepts an unknown key."
                ) from None
            if isinstance(exc, paramiko.AuthenticationException):
                raise TargetError(f"SSH authentication as {self.user} failed: {exc}") from None
            raise TargetError(f"SSH to {self.host}:{self.port} failed: {exc}") from None
        except OSError as exc:
            raise TargetError(f"cannot reach {self.host}:{self.port}: {exc}") from None
        return client

    @staticmethod
    def _ssh_config(host: str, path: str | None) -> dict:
        import paramiko

        path = Path(path or Path.home() / ".ssh" / "config")
        if not path.exists():
            return {}
        return paramiko.SSHConfig.from_path(str(path)).lookup(host)

    def describe(self):
        return {**super().describe(), "host": self.host, "port": self.port, "user": self.user}

    def _transport(self):
        """The connection's transport; connect again (same checks) if it dropped."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            with self._lock:
                transport = self.client.get_transport()
                if transport is None or not transport.is_active():
                    self.client.close()
                    self.client = self._connect()
                    self._forwards.clear()
                    transport = self.client.get_transport()
        return transport

    def call(self, op, *args, stdin=b"", timeout=120, **options):
        command = shlex.join(self.argv(op, *args, **options))
        try:
            chan = self._transport().open_session(timeout=15)
            chan.settimeout(timeout)
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.exit_status_ready() and not chan.recv_ready():
                    while chan.recv_stderr_ready():
                        err += chan.recv_stderr(65536)
                    break
                else:
                    select.select([chan], [], [], 0.5)
            status = chan.recv_exit_status()
            chan.close()
        except (self.paramiko.SSHException, OSError, AttributeError) as exc:
            raise TargetError(f"SSH command {op} on {self.host} failed: {exc}") from None
        return Result(status, bytes(out), err.decode(errors="replace"))

    def upload(self, local_root: Path) -> int:
        """Copy the workflow's tracked files to the remote workflow folder; return their count."""
        listing = ["git", "-C", str(local_root), "ls-files", "-z"]
        files = subprocess.run(listing, capture_output=True, check=True).stdout.split(b"\0")
        sftp = self.client.open_sftp()
        made = set()
        count = 0
        try:
            for name in filter(None, (f.decode() for f in files)):
                src = local_root / name
                if not src.is_file():
                    continue
                dest = f"{self.workflow}/{name}"
                for parent in reversed(Path(dest).parents):
                    p = str(parent)
                    if p in (".", "/") or p in made:
                        continue
                    try:
                        sftp.mkdir(p)
                    except OSError:
                        pass  # exists
                    made.add(p)
                sftp.put(str(src), dest)
                sftp.chmod(dest, src.stat().st_mode & 0o777)
                count += 1
        finally:
            sftp.close()
        return count

    def forward(self, host, port):
        """Forward a local port through this SSH connection to host:port (as the login
        node sees it); reuse the forward for the same destination."""
        with self._lock:
            if (host, port) in self._forwards:
                return self._forwards[(host, port)]
            listener = socket.create_server(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{listener.getsockname()[1]}"
            self._forwards[(host, port)] = url
        transport = self._transport()

        def pump(conn: socket.socket) -> None:
            try:
                chan = transport.open_channel("direct-tcpip", (host, port), conn.getpeername())
            except Exception:  # noqa: BLE001 - the destination refused: drop this connection
                conn.close()
                return
            try:
                while True:
                    readable, _, _ = select.select([conn, chan], [], [], 60)
                    if not readable:
                        continue
                    if conn in readable:
                        data = conn.recv(65536)
                        if not data:
                            break
                        chan.sendall(data)
                    if chan in readable:
                        data = chan.recv(65536)
                        if not data:
                            break
                        conn.sendall(data)
            except OSError:
                pass
            finally:
                chan.close()
                conn.close()

        def accept() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=pump, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return url

    def close(self):
        self.client.close()


def _local_user() -> str:
    import getpass

    return getpass.getuser()
