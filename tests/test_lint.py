"""The CI gates of a Snakemake workflow: lint and formatting of rules and Python."""

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_is_clean():
    proc = run(sys.executable, "-m", "snakemake", "--lint")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Lints for" not in out, out


def test_snakefmt_check_is_clean():
    proc = run(str(BIN / "snakefmt"), "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_is_clean():
    lint = run(str(BIN / "ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout
    fmt = run(str(BIN / "ruff"), "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout


def test_layers_point_down():
    """The contract in .importlinter: entry points, orchestration, services and report,
    monitoring, engines and load generation, config, then the small helpers below."""
    proc = run(str(BIN / "lint-imports"), "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def _package_of(path: Path) -> str:
    """llmsweep.<first part> for a module of the package; the folder for other files."""
    rel = path.relative_to(ROOT)
    if rel.parts[:2] == ("src", "llmsweep") and len(rel.parts) > 3:
        return f"llmsweep.{rel.parts[2]}"
    return str(rel.with_suffix(""))


def test_no_private_name_is_imported_across_packages():
    import ast

    found = []
    files = [p for d in ("src", "tests", "scripts", "bench") for p in (ROOT / d).rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                "llmsweep"
            ):
                continue
            target = ".".join(node.module.split(".")[:2])
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and target != _package_of(path):
                    found.append(f"{path.relative_to(ROOT)}: {node.module}.{alias.name}")
    assert not found, found


def test_only_the_pattern_modules_test_a_pattern_name():
    """Load patterns differ in their modules under loadgen/patterns alone: elsewhere no
    comparison names a pattern; callers ask the pattern's module."""
    import ast

    from llmsweep.loadgen.patterns import PATTERNS

    own = ROOT / "src" / "llmsweep" / "loadgen" / "patterns"
    files = [p for d in ("src", "scripts", "bench") for p in (ROOT / d).rglob("*.py")]
    found = []
    for path in (p for p in files if own not in p.parents):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                names = {n.value for n in ast.walk(node) if isinstance(n, ast.Constant)}
                if names & set(PATTERNS):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    smk = [
        p
        for p in (ROOT / "rules").glob("*.smk")
        if any(f'"{name}"' in p.read_text() for name in PATTERNS)
    ]
    assert not found and not smk, found + smk


def test_the_rules_conda_env_has_the_runtime_pins_of_requirements():
    import yaml

    env = yaml.safe_load((ROOT / "envs" / "llmsweep.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    pins = {p.split("==")[0]: p for p in pins if p and not p.startswith("#")}
    for pin in pip:
        if pin != "-e ..":
            assert pins.get(pin.split("==")[0]) == pin, f"{pin} differs from requirements.txt"
    for needed in ("snakemake", "pandas", "pyarrow", "aiohttp", "flask"):
        assert needed in {p.split("==")[0] for p in pip}
    assert "-e .." in pip  # the package itself


def test_no_import_cycle_between_the_packages_subpackages():
    """Siblings of one layer may import each other one way only."""
    import grimp

    graph = grimp.build_graph("llmsweep")
    tops = sorted({m.split(".")[1] for m in graph.modules if m.count(".") >= 1})
    cycles = [
        (a, b)
        for a in tops
        for b in tops
        if a < b
        and graph.direct_import_exists(
            importer=f"llmsweep.{a}", imported=f"llmsweep.{b}", as_packages=True
        )
        and graph.direct_import_exists(
            importer=f"llmsweep.{b}", imported=f"llmsweep.{a}", as_packages=True
        )
    ]
    assert not cycles, cycles
