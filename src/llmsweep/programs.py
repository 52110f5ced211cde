"""Every program llmsweep runs beside the LLM server, found one way: a native binary (a
name on PATH, e.g. from `module load`, or a path) or an Apptainer image. A missing one is
reported with its config key and the ways to provide it.

The config shape is the same for each (config/schema.yaml's `$defs/program`):
`runtime` (native | apptainer), `binary` (null tries the usual names), `image`,
`apptainer` (the apptainer or singularity command).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from llmsweep.util import is_file


class MissingProgram(RuntimeError):
    """A program llmsweep needs is not there; the message names the key and the fixes."""


@dataclass(frozen=True)
class Known:
    """What llmsweep knows of one program."""

    key: str  # its config key
    names: tuple[str, ...]  # native names tried on PATH when `binary` is null
    in_image: str  # the command inside its image
    image_source: str  # a pinned public image to build a .sif from


KNOWN = {
    "prometheus": Known(
        "monitoring.prometheus",
        ("prometheus",),
        "prometheus",
        "docker://prom/prometheus:v2.42.0",
    ),
    "pushgateway": Known(
        "monitoring.pushgateway",
        ("prometheus-pushgateway", "pushgateway"),  # Debian's name, upstream's name
        "pushgateway",
        "docker://prom/pushgateway:v1.5.1",
    ),
    "node_exporter": Known(
        "monitoring.node_exporter",
        ("prometheus-node-exporter", "node_exporter"),
        "node_exporter",
        "docker://prom/node-exporter:v1.5.0",
    ),
    "grafana": Known(
        "monitoring.grafana",
        ("grafana", "grafana-server"),  # Grafana >= 10, older releases
        "grafana",
        "docker://grafana/grafana-oss:11.3.0",
    ),
}


def _expand(path: str | None) -> str | None:
    """`~/images/x.sif` as the user means it."""
    return os.path.expanduser(path) if path else path


def _how_to_provide(name: str) -> str:
    known = KNOWN[name]
    return (
        f"provide it with a module (module load ...), a user-space install on PATH, "
        f"{known.key}.binary: /path/to/{known.in_image}, or an Apptainer image "
        f"({known.key}.runtime: apptainer and {known.key}.image: a .sif built with "
        f"'apptainer build {known.in_image}.sif {known.image_source}')"
    )


def find(name: str, pcfg: dict) -> str:
    """The program to execute for `name` under `pcfg`: the native binary, or apptainer with
    an existing image. MissingProgram says what is missing and how to provide it."""
    known = KNOWN[name]
    if pcfg["runtime"] == "apptainer":
        apptainer = shutil.which(pcfg["apptainer"])
        if not apptainer:
            raise MissingProgram(
                f"{known.key}.apptainer: {pcfg['apptainer']} is not on PATH "
                f"(module load apptainer, or name the apptainer or singularity command)"
            )
        image = _expand(pcfg["image"])
        if not image or not is_file(image):
            raise MissingProgram(
                f"{known.key}.image: {image!r} is not a file (build one with "
                f"'{pcfg['apptainer']} build {known.in_image}.sif {known.image_source}')"
            )
        return apptainer
    names = (_expand(pcfg["binary"]),) if pcfg["binary"] else known.names
    for candidate in names:
        found = shutil.which(candidate)
        if found:
            return found
    key = f"{known.key}.binary" if pcfg["binary"] else known.key
    tried = " or ".join(names)
    raise MissingProgram(f"{key}: {tried} not found: {_how_to_provide(name)}")


def command(
    name: str,
    pcfg: dict,
    args: list[str],
    binds: tuple[str | Path, ...] = (),
    env: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) that run `name` with `args`. Natively the environment is passed
    on; in an image it goes in as --env (the container starts clean), and `binds` are the
    folders the program reads or writes, mounted at the same paths."""
    program = find(name, pcfg)
    env = dict(env or {})
    if pcfg["runtime"] != "apptainer":
        return [program, *args], env
    argv = [program, "exec", "--cleanenv", "--no-home"]
    for folder in binds:
        argv += ["--bind", f"{folder}:{folder}"]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    return [*argv, _expand(pcfg["image"]), KNOWN[name].in_image, *args], {}
