"""Where the run operations act: the workflow (its Snakefile and profiles) and the working
folder (the site's own profiles, and results/ with the runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmsweep.paths import RunPaths, run_name
from llmsweep.web.failure import BAD, Failure


@dataclass(frozen=True)
class Workspace:
    workflow: Path
    workdir: Path

    @classmethod
    def at(cls, workflow: Path, workdir: Path) -> Workspace:
        return cls(workflow.resolve(), workdir.resolve())

    @property
    def results(self) -> Path:
        return self.workdir / "results"

    def paths(self, run: str) -> RunPaths:
        """The run's paths; a name that is not a run name is a bad request."""
        try:
            return RunPaths(run_name(run), self.results)
        except ValueError as exc:
            raise Failure(BAD, str(exc)) from None

    def profile_dirs(self) -> list[Path]:
        """Where profiles are looked up: the site's own first, then the workflow's."""
        return [self.workdir / "profiles", self.workflow / "profiles"]
