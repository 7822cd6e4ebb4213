"""LightGBM's command-line program, for its feature-parallel learner.

LightGBM's Python package cannot train feature-parallel: the C API behind it rejects
``tree_learner=feature``; the command-line program ``lightgbm`` has it. PyPI ships no such
program, so :func:`program` builds it once from LightGBM's own source release (the sdist of the
installed version, fetched by ``pip download``) with CMake and a C++ compiler, and
keeps it in ``<venv>/share/scaling/lightgbm-<version>/``. ``make test`` builds it in the set-up
(``python -m scaling.collectives.lightgbm_cli``); otherwise the first feature-parallel LightGBM
run does, on the driver, before its gang.

:func:`train` runs it on a gang member: the member's data as LightGBM's binary dataset file
(made by the Python package from the same parameters), a config file with the machine list the
gang built (:class:`~scaling.collectives.lightgbm.LightGBMBackend`), and each "finished
iteration" line of its log timed as it arrives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from scaling.errors import UsageError


def version() -> str:
    return metadata.version("lightgbm")


def program_path() -> Path:
    """Where the program of the installed LightGBM version is kept."""
    return Path(sys.prefix) / "share" / "scaling" / f"lightgbm-{version()}" / "lightgbm"


def program(say: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> Path:
    """The path of the ``lightgbm`` program, built first if it is not there yet.

    Raises
    ------
    UsageError
        When it cannot be built here (no CMake or C++ compiler, no package index).
    """
    path = program_path()
    if path.is_file():
        return path
    # CMake from the environment first: pip's cmake (the lightgbm-cli extra) is new enough
    # for LightGBM (>= 3.28) where the system's may not be.
    cmake = shutil.which("cmake", path=str(Path(sys.executable).parent)) or shutil.which("cmake")
    for tool, found in (("cmake", cmake), ("c++", shutil.which("c++"))):
        if found is None:
            raise UsageError(
                f"LightGBM's feature-parallel learner needs its command-line program, built "
                f"from source, and {tool} is not installed: pip install 'scaling[lightgbm-cli]' "
                "and a C++ compiler (apt install g++), or use --library xgboost --mode feature"
            )
    cores = os.cpu_count() or 1
    say(
        f"building LightGBM {version()}'s command-line program from its source release, once "
        f"(CMake, {cores} cores; ~5 minutes on 2), into {path.parent}"
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scaling-lightgbm-") as tmp:
        source = _fetch_source(Path(tmp))
        build = Path(tmp) / "build"
        for command in (
            # The program out of the source root, where the Python package's lightgbm/ is.
            [cmake, "-S", str(source), "-B", str(build), "-DBUILD_CLI=ON",
             "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_RUNTIME_OUTPUT_DIRECTORY={build}/bin"],
            [cmake, "--build", str(build), "--target", "lightgbm", "-j", str(cores)],
        ):  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise UsageError(
                    f"building LightGBM's program failed ({Path(command[0]).name} "
                    f"{command[1]}): " + " / ".join(tail)
                )
        built = build / "bin" / "lightgbm"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        shutil.copy2(built, partial)
        partial.replace(path)  # atomic: a concurrent build finds a whole program or none
    say(f"built {path} in {time.perf_counter() - t0:.0f} s")
    return path


def _fetch_source(into: Path) -> Path:
    """The installed version's source release, unpacked; its root. pip fetches it, so the
    user's pip configuration holds (index, mirror, proxy, certificates), and pip checks it
    against the index's hash."""
    # --no-binary for lightgbm alone: its build requirements (scikit-build-core, CMake) stay
    # wheels, else pip builds CMake from source to read the release's metadata.
    command = [sys.executable, "-m", "pip", "download", "--no-binary", "lightgbm", "--no-deps",
               "--quiet", "--dest", str(into), f"lightgbm=={version()}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    archives = sorted(into.glob("lightgbm-*.tar.gz"))
    if done.returncode != 0 or not archives:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no source release"]
        raise UsageError(
            f"cannot download LightGBM {version()}'s source release with pip ({last[0]}); "
            "build where pip reaches a package index, or use --library xgboost --mode feature"
        )
    with tarfile.open(archives[0]) as tar:
        tar.extractall(into, filter="data")
    return into / f"lightgbm-{version()}"


def train(
    params: dict,
    data_file: Path,
    model_file: Path,
    timeout: float,
    on_round: Callable[[], None],
) -> None:
    """Train with the program: ``params`` (LightGBM's, the network's included) on the binary
    dataset ``data_file``; the model is written to ``model_file``; ``on_round()`` is called as
    each boosting round ends.

    Raises
    ------
    RuntimeError
        When the program fails or runs past ``timeout`` seconds (with its last lines).
    """
    config = model_file.with_suffix(".conf")
    settings = {
        **params,
        "task": "train",
        "data": str(data_file),
        "output_model": str(model_file),
        "verbosity": 1,  # its per-round "finished iteration" lines are the round clock
    }
    config.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    with subprocess.Popen(
        [str(program_path()), f"config={config}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as run:
        watchdog = threading.Timer(timeout, run.kill)  # a peer that never connects: no hang
        watchdog.start()
        lines: list[str] = []
        try:
            for line in run.stdout:
                if "finished iteration" in line:
                    on_round()
                lines = [*lines[-4:], line.strip()]
        finally:
            watchdog.cancel()
        if run.wait() != 0:
            what = " / ".join(lines[-3:]) or f"killed after {timeout:.0f}s"
            raise RuntimeError(f"LightGBM's program failed: {what}")


if __name__ == "__main__":
    try:
        print(program())
    except UsageError as e:
        print(f"scaling: error: {e}", file=sys.stderr)
        sys.exit(2)
