"""The distribution: every package is listed, and a wheel installed into a fresh environment
outside the repository runs the shipped profiles, `voicepipe init` and the starter's own test."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _listed_packages() -> set[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_listed_in_pyproject():
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "voicepipe").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    missing = sorted(found - _listed_packages())
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_distribution_name_is_voicepipe_live():
    from importlib.metadata import distribution

    assert distribution("voicepipe-live").entry_points.select(group="console_scripts")["voicepipe"].value == "voicepipe.cli:program"


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """A venv holding only the built wheel; its dependencies come from the test environment's
    site-packages through a path file (so nothing is downloaded but the build backend)."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = dist.glob("voicepipe_live-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)]
        if _pip_has_python_option() else
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    return venv


def _pip_has_python_option() -> bool:
    out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).stdout
    major, minor = (int(x) for x in out.split()[1].split(".")[:2])
    return (major, minor) >= (22, 3)


def _run(venv: Path, cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICEPIPE", "AZURE_VOICELIVE", "PYTEST"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_the_wheel_ships_profiles_and_starts_a_project_in_an_empty_folder(wheel_env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    voicepipe = str(wheel_env / "bin" / "voicepipe")

    where = _run(wheel_env, empty, str(wheel_env / "bin" / "python"), "-c", "import voicepipe; print(voicepipe.__file__)")
    assert str(wheel_env) in where.stdout, where.stdout + where.stderr  # the wheel's copy, not the checkout

    listed = _run(wheel_env, empty, voicepipe, "profiles")
    assert listed.returncode == 0 and "builtin:demo.yaml" in listed.stdout and "builtin:ava.yaml" in listed.stdout

    valid = _run(wheel_env, empty, voicepipe, "validate", "builtin:demo.yaml", "builtin:tools.yaml")
    assert valid.returncode == 0, valid.stderr

    init = _run(wheel_env, empty, voicepipe, "init")
    assert init.returncode == 0, init.stderr
    for name in ("profiles/my-agent.yaml", "plugins/keyword_alert.py", "tests/test_keyword_alert.py", ".env.example"):
        assert (empty / name).is_file(), name

    run = _run(
        wheel_env, empty, voicepipe, "run", "profiles/my-agent.yaml",
        "--set", "connection.emulator.speed=0", "--set", "audio.input.realtime=false", "--set", "audio.output.realtime=false",
    )
    assert run.returncode == 0, run.stderr
    (run_dir,) = (empty / "logs").iterdir()
    assert "Caspian" in (run_dir / "transcript.txt").read_text()
    assert "lake" in (run_dir / "alerts.jsonl").read_text()

    tests = _run(wheel_env, empty, str(wheel_env / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", timeout=300)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout

    again = _run(wheel_env, empty, voicepipe, "init")
    assert again.returncode == 2 and "already there" in again.stderr and "Traceback" not in again.stderr
