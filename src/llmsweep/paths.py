"""The results layout and the one place that maps model names to filesystem-safe slugs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

# As config/schema.yaml's run. \A and \Z: `$` would also match before a final newline.
RUN_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def run_name(text: str) -> str:
    """`text` if it is a valid run name (no path separators, no leading dot), else ValueError."""
    if not isinstance(text, str) or not RUN_NAME.fullmatch(text):
        raise ValueError(f"invalid run name {text!r}: letters, digits, '.', '_', '-' only")
    return text


def model_slug(model: str) -> str:
    """`llama3.2:1b` -> `llama3.2_1b`; a short hash keeps distinct names distinct."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"
    if safe == model:
        return safe
    return f"{safe}-{hashlib.sha256(model.encode()).hexdigest()[:6]}"


class RunPaths:
    """Where everything of one run lives, under `<results>/<run>/`: the only code that knows
    the results layout. Rules, the web front end, the report and the services ask it."""

    def __init__(self, run: str, results: str | Path = "results"):
        self.run = run
        self.root = Path(results) / run

    @property
    def services(self) -> Path:
        return self.root / "services"

    def service_dir(self, key: str) -> Path:
        return self.services / key

    @property
    def secret(self) -> Path:
        """services/secret: the run's token (mode 0600) that every service of the run
        requires (llmsweep.secret)."""
        return self.services / "secret"

    @property
    def web_config(self) -> Path:
        """monitoring/web-config.yml: the monitoring services' --web.config.file (basic
        authentication with the run's token, as a bcrypt hash; mode 0600)."""
        return self.monitoring / "web-config.yml"

    @property
    def leases(self) -> Path:
        return self.services / "leases"

    @property
    def monitoring(self) -> Path:
        return self.root / "monitoring"

    @property
    def targets(self) -> Path:
        return self.monitoring / "targets"

    @property
    def bench(self) -> Path:
        return self.root / "bench"

    def point_dir(self, slug: str, load: str) -> Path:
        """bench/<model slug>/<load>: one folder per sweep point (load: c4, r2.5, c4_rep1)."""
        return self.bench / slug / load

    def deployment_record(self, slug: str) -> Path:
        """bench/<deployment slug>/deployment.json: what the deployment is (engine, model,
        GPUs, settings, its points) and each session of its server (started, ready and
        stopped times, and the window of every point it ran); written when all its points
        are finished."""
        return self.bench / slug / "deployment.json"

    def summary(self, slug: str, load: str) -> Path:
        return self.point_dir(slug, load) / "summary.json"

    def requests(self, slug: str, load: str) -> Path:
        return self.point_dir(slug, load) / "requests.jsonl"

    def live(self, slug: str, load: str) -> Path:
        """bench/<slug>/<load>/live.json: the point's live figures while it runs (requests
        done, rates, recent latencies, ETA), rewritten every few seconds by its deployment's
        job; its last state (done or failed) stays after it ends."""
        return self.point_dir(slug, load) / "live.json"

    def live_files(self) -> list[Path]:
        """Every point's live.json on disk, sorted."""
        return sorted(self.bench.glob("*/*/live.json"))

    def summaries(self) -> list[Path]:
        """Every finished point's summary.json on disk, sorted."""
        return sorted(self.bench.glob("*/*/summary.json"))

    @property
    def run_plan(self) -> Path:
        """plan.json: what the run was started with (its validated config, every sweep
        point, the driver's PID and host), written when the workflow starts, so that a run
        started anywhere can be watched (`llmsweep status`, the web front end's run page)."""
        return self.root / "plan.json"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def report_file(self, name: str) -> Path:
        """A file of the report folder: points.csv, metadata.json, throughput.png, ..."""
        return self.report / name

    def point_plot(self, slug: str, load: str) -> Path:
        return self.report / "points" / slug / load / "distributions.png"

    def point_slices_plot(self, slug: str, load: str) -> Path:
        """report/points/<slug>/<load>/slices.png: the point's figures per time slice of
        its window (sweep.slice_s)."""
        return self.report / "points" / slug / load / "slices.png"

    @property
    def intervals(self) -> Path:
        """report/intervals.csv: each deployment's load levels, the mean of every figure
        over the level's repeats and its 95 % confidence interval (report.confidence);
        written where the sweep repeats its points."""
        return self.report / "intervals.csv"

    @property
    def turns(self) -> Path:
        """report/turns.csv: each multi-turn point's figures per turn (report.turns);
        written where the sweep has multi-turn points."""
        return self.report / "turns.csv"

    def comparison(self, other: str, suffix: str) -> Path:
        """The comparison of this run with run `other` (suffix .txt or .html)."""
        return self.compare / f"{other}-vs-{self.run}{suffix}"

    def lease(self, service: str, slug: str) -> Path:
        """A deployment's lease on the run's `service` (pushgateway, prometheus)."""
        return self.leases / service / f"{slug}.json"

    def deployment_sessions(self, slug: str) -> Path:
        """bench/<deployment slug>/sessions/: one JSON file per start of the deployment's
        server (its times and the windows of the points it ran), kept across attempts."""
        return self.bench / slug / "sessions"

    @property
    def driver_heartbeat(self) -> Path:
        """services/driver.heartbeat: touched by the workflow driver while it lives."""
        return self.services / "driver.heartbeat"

    @property
    def gpu_claims(self) -> Path:
        """services/gpus/: which local GPUs each running server holds."""
        return self.services / "gpus"

    @property
    def slurm_queue(self) -> Path:
        """services/slurm-queue.json: the run's shared view of its SLURM jobs."""
        return self.services / "slurm-queue.json"

    def log(self, *parts: str) -> Path:
        """A job's log: logs/<parts...>.log (e.g. benchmark, <model>, <load>)."""
        return self.logs.joinpath(*parts[:-1], f"{parts[-1]}.log")

    @property
    def report_page(self) -> Path:
        return self.report / "index.html"

    @property
    def metadata(self) -> Path:
        return self.report / "metadata.json"

    @property
    def compare(self) -> Path:
        return self.report / "compare"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def launch(self) -> Path:
        """What the web front end's launch wrote: config, driver record, log, exit status."""
        return self.root / "launch"

    @property
    def launch_config(self) -> Path:
        """The config the run was launched with (its run name filled in)."""
        return self.launch / "config.yaml"

    @property
    def driver_record(self) -> Path:
        """The launched workflow driver: its PID, the PID's start time, host and argv."""
        return self.launch / "driver.json"

    @property
    def driver_exit(self) -> Path:
        """How the launched workflow driver ended: its return code and when."""
        return self.launch / "exit.json"

    @property
    def driver_log(self) -> Path:
        """What the launched workflow driver printed (Snakemake's log)."""
        return self.launch / "driver.log"

    def relative(self, path: str | Path) -> str:
        """`path`, somewhere under the run's folder, as a path relative to that folder (the
        spelling the web front end's file operations take)."""
        return Path(path).relative_to(self.root).as_posix()

    @classmethod
    def of_run_dir(cls, run_dir: str | Path) -> RunPaths:
        """The RunPaths of an existing `<results>/<run>` folder."""
        run_dir = Path(run_dir)
        return cls(run_dir.name, run_dir.parent)

    @classmethod
    def of_report_file(cls, path: str | Path) -> RunPaths:
        """The RunPaths of a file in `<results>/<run>/report/`."""
        return cls.of_run_dir(Path(path).parents[1])

    @classmethod
    def of_point_file(cls, path: str | Path) -> RunPaths:
        """The RunPaths of a file in a point's folder, `<results>/<run>/bench/<slug>/<load>/`."""
        return cls.of_run_dir(Path(path).parents[3])

    @classmethod
    def of_service_file(cls, path: str | Path) -> RunPaths:
        """The RunPaths of a file in `<results>/<run>/services/<key>/`."""
        return cls.of_run_dir(Path(path).resolve().parents[2])
