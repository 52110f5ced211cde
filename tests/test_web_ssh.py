"""The web front end with an SSH target: a real OpenSSH server on 127.0.0.1 (Debian's
openssh-server, started by the test with its own host key, on a free port), a key made
by the test, and the real single-node SLURM of tests/slurm/cluster.sh behind it: connect
(unknown host keys refused), upload, launch a sweep whose services and benchmarks are
SLURM jobs, watch the run's queue, cancel only the run's jobs, read its logs, tunnel."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from test_web import stop_launched_runs

from conftest import ROOT
from helpers import WebServer
from llmsweep.util import free_port, wait_until
from llmsweep.web.targets import SshTarget, TargetError
from slurm.testprofile import write_test_profile

pytestmark = pytest.mark.slurm
SSHD = "/usr/sbin/sshd"
RUN = "sshrun"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    assert os.path.exists(SSHD), "openssh-server is not installed (bin/install --test)"
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"llmsweep-{name}",
                "-f",
                str(d / name),
            ],
            check=True,
        )
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    port = free_port("127.0.0.1")
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / "host_key"}
PidFile {d / "sshd.pid"}
AuthorizedKeysFile {d / "authorized_keys"}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding local
X11Forwarding no
Subsystem sftp internal-sftp
""")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation folder
    log = open(d / "sshd.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=subprocess.STDOUT
    )

    def listening():
        assert proc.poll() is None, (d / "sshd.log").read_text()
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, 30, "sshd")
    host_pub = (d / "host_key.pub").read_text().split()
    known = f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n"
    yield {"port": port, "key": str(d / "client_key"), "known_line": known, "dir": d}
    proc.terminate()
    proc.wait(10)


def call(url, token, method="GET", body=None):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def web(tmp_path_factory, sshd):
    local = tmp_path_factory.mktemp("web-ssh")
    known = local / "known_hosts"
    known.write_text("")  # nothing known yet
    server = WebServer(local, "--known-hosts", str(known))
    yield server, known
    assert server.stop() == 0, server.output()
    for workdir in tmp_path_factory.getbasetemp().glob("test_launch_queue_cancel*/cluster-home"):
        stop_launched_runs(workdir)


def target_body(sshd, workdir, **extra):
    return {
        "kind": "ssh",
        "host": "127.0.0.1",
        "port": sshd["port"],
        "user": "root",
        "key_file": sshd["key"],
        "workflow": str(ROOT),
        "workdir": str(workdir),
        "python": sys.executable,
        **extra,
    }


def test_an_unknown_host_key_is_refused_with_a_clear_message(web, sshd, tmp_path):
    server, known = web
    status, body = call(
        f"{server.base}/api/target", server.token, "POST", target_body(sshd, tmp_path)
    )
    assert status == 502
    message = json.loads(body)["error"]
    assert message.startswith("unknown host key: 127.0.0.1:") and "never accepts" in message
    # A different key recorded for the host: refused as well, and said so.
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True
    )
    pub = (tmp_path / "other.pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{sshd['port']} {pub[0]} {pub[1]}\n")
    status, body = call(
        f"{server.base}/api/target", server.token, "POST", target_body(sshd, tmp_path)
    )
    assert status == 502 and "does NOT match" in json.loads(body)["error"]
    known.write_text(sshd["known_line"])
    status, body = call(
        f"{server.base}/api/target", server.token, "POST", target_body(sshd, tmp_path)
    )
    assert status == 200, body
    assert json.loads(body)["kind"] == "ssh" and json.loads(body)["user"] == "root"


def test_upload_copies_the_workflow_when_asked(web, sshd, tmp_path):
    server, known = web
    known.write_text(sshd["known_line"])
    remote = tmp_path / "remote-workflow"
    status, body = call(
        f"{server.base}/api/target",
        server.token,
        "POST",
        target_body(sshd, tmp_path, workflow=str(remote), upload=True),
    )
    assert status == 200, body
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    present = [f for f in tracked if (ROOT / f).is_file()]
    assert json.loads(body)["uploaded"] == len(present)
    assert (remote / "Snakefile").read_bytes() == (ROOT / "Snakefile").read_bytes()
    assert os.access(remote / "bin" / "install", os.X_OK)


def test_tunnel_through_the_ssh_connection(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(sshd["known_line"])
    (tmp_path / "hello.txt").write_text("through the tunnel")
    handler = lambda *a: SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    target = SshTarget(
        "127.0.0.1",
        sshd["port"],
        "root",
        sshd["key"],
        str(known),
        workflow=str(ROOT),
        python=sys.executable,
    )
    try:
        url = target.forward("127.0.0.1", httpd.server_address[1])
        assert url != f"http://127.0.0.1:{httpd.server_address[1]}"
        with urllib.request.urlopen(f"{url}/hello.txt", timeout=30) as resp:
            assert resp.read() == b"through the tunnel"
        assert target.forward("127.0.0.1", httpd.server_address[1]) == url  # reused
        target.client.get_transport().close()  # the connection drops: the next call reconnects
        result = target.call("runs")
        assert result.status == 0 and "runs" in result.json(), result.stderr
    finally:
        target.close()
        httpd.shutdown()
    with pytest.raises(TargetError, match="unknown host key"):
        SshTarget("127.0.0.1", sshd["port"], "root", sshd["key"], str(tmp_path / "none"))


def squeue_ids() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
    return out.stdout.split()


def sbatch(name: str) -> str:
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--job-name={name}",
            "--account=bench",
            "--partition=cpu",
            "--time=5",
            "--mem=100",
            "--output=/dev/null",
            "--wrap",
            "sleep 300",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().split(";")[0]


def test_launch_queue_cancel_and_logs_over_ssh_on_slurm(cluster, web, sshd, tmp_path):
    server, known = web
    known.write_text(sshd["known_line"])
    workdir = tmp_path / "cluster-home"
    workdir.mkdir()
    profile = write_test_profile(workdir)
    (workdir / "profiles").mkdir()
    shutil.move(profile, workdir / "profiles" / "testcluster")
    status, body = call(
        f"{server.base}/api/target", server.token, "POST", target_body(sshd, workdir)
    )
    assert status == 200, body
    config = {
        "run": RUN,
        "sweep": {"clients": [1, 2], "requests_per_client": 2},
        "workload": {"max_tokens": 16},
        "engines": {"llama_cpp": {"parallel": 2, "ctx_size": 1024, "gpu_layers": 0}},
        "services": {"ready_timeout_s": 120, "queue_timeout_s": 120},
        "monitoring": {"scrape_interval_s": 1},
    }
    probe = other = None
    try:
        status, body = call(
            f"{server.base}/api/runs",
            server.token,
            "POST",
            {"config": config, "profile": "testcluster"},
        )
        assert status == 201, body
        api = f"{server.base}/api/runs/{RUN}"

        def queue():
            status, body = call(f"{api}/queue", server.token)
            assert status == 200, body
            return json.loads(body)

        # The run's own service jobs show up in its queue view while it runs.
        jobs = wait_until(
            lambda: [j for j in queue()["jobs"] if j["name"].startswith(f"llmsweep-{RUN}-")],
            180,
            "the run's service jobs in the queue",
            max_delay=1,
        )
        assert queue()["slurm"] is True and all(j["id"] in squeue_ids() for j in jobs)
        probe, other = sbatch(f"llmsweep-{RUN}-probe"), sbatch("someone-elses-job")
        listed = [j["id"] for j in queue()["jobs"]]
        assert probe in listed and other not in listed
        status, body = call(f"{api}/jobs/{other}/cancel", server.token, "POST")
        assert status == 403 and "not a queued job of run" in json.loads(body)["error"]
        assert other in squeue_ids()
        status, body = call(f"{api}/jobs/{probe};scancel%20-u%20root/cancel", server.token, "POST")
        assert status in (400, 404)
        status, body = call(f"{api}/jobs/{probe}/cancel", server.token, "POST")
        assert status == 200, body
        wait_until(lambda: probe not in squeue_ids(), 60, "the probe job to go", max_delay=1)
        probe = None

        charted: dict = {}

        def ended():
            if not charted:  # the run page's charts, through the SSH connection's tunnel
                status, body = call(f"{api}/charts", server.token)
                data = json.loads(body)
                if data.get("available") and any(c["series"] for c in data["charts"]):
                    status, body = call(f"{api}/monitoring", server.token)
                    charted.update(data, links=json.loads(body))
            status, body = call(f"{api}/progress", server.token)
            info = json.loads(body)
            return info if info["state"] != "running" else None

        info = wait_until(ended, 600, "the run to end", max_delay=2)
        assert info["state"] == "finished", info["log_tail"]
        # The charts came from the run's Prometheus (its token fetched over SSH) through a
        # tunnel: a local port of the SSH connection, not the service job's address.
        assert charted, "no chart with data while the run went"
        links = charted["links"]
        assert links["tunnel"] is True and links["prometheus"]["url"] == charted["prometheus"]
        assert charted["prometheus"].startswith("http://127.0.0.1:")
        assert charted["prometheus"] != links["prometheus"]["remote_url"]
        assert links["prometheus"]["user"] == "llmsweep"  # its login, shown on the page
        assert links["prometheus"]["password_file"].endswith(f"{RUN}/services/secret")
        token = (workdir / "results" / RUN / "services" / "secret").read_text().strip()
        assert token not in json.dumps(charted)  # the browser is never sent the token
        assert info["percent"] == 100 and info["done"] == 2
        status, log = call(f"{server.base}/runs/{RUN}/view?path=launch/driver.log", server.token)
        assert status == 200 and b"steps (100%) done" in log
        status, body = call(f"{api}/files?path=logs", server.token)
        assert status == 200 and "acquire" in [e["name"] for e in json.loads(body)["entries"]]
        status, _ = call(f"{server.base}/runs/{RUN}/view?path=../../../etc/passwd", server.token)
        assert status == 400
        # Nothing of the run stays queued.
        wait_until(lambda: not [j for j in queue()["jobs"]], 120, "the run's jobs to go", 1)
    finally:
        for job in (probe, other):
            if job:
                subprocess.run(["scancel", job])
    assert (workdir / "results" / RUN / "report" / "index.html").exists()
    launched = yaml.safe_load((workdir / "results" / RUN / "launch" / "config.yaml").read_text())
    assert launched["run"] == RUN
