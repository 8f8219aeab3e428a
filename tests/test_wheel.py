"""A real package: a wheel built from the source, installed into a fresh virtualenv outside the source
tree, runs ``mmexplore info`` and a similarity on the bundled model (found through importlib.resources).

The fresh venv has no packages of its own; a ``.pth`` line makes this environment's third-party
packages (torch, open_clip, ...) importable so nothing is downloaded. That line adds a plain path,
so the source checkout's editable-install hook does not come along: ``mmexplore`` can only come from
the wheel.
"""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Copied to build from (never build inside the checkout: setuptools leaves build/ and egg-info there).
SOURCES = ("pyproject.toml", "README.md", "mmexplore", "mmexplore_app")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    wheel = next(dist.glob("mmexplore-*.whl"))
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    purelib = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    # This environment's third-party packages, as a plain path (no .pth processing: no editable hook).
    ours = [p for p in {sysconfig.get_path("purelib"), *site.getsitepackages()} if Path(p).is_dir()]
    (purelib / "zz_host_packages.pth").write_text("\n".join(ours) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    shutil.rmtree(src)  # the source copy is gone: only the installed wheel remains
    return env_dir


def _run(env_dir: Path, *argv: str, cwd: Path) -> dict:
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(cwd)}
    proc = subprocess.run([str(env_dir / "bin" / "mmexplore"), *argv, "--json"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow  # ~50 s on the shared machine (build, install, two model loads)
def test_installed_wheel_runs_the_bundled_model(installed, tmp_path):
    py = installed / "bin" / "python"
    where = subprocess.run([str(py), "-c", "import mmexplore, mmexplore.models.specs as s; print(mmexplore.__file__); "
                            "print(s.BUNDLED_DIR)"], cwd=tmp_path, capture_output=True, text=True, check=True,
                           env={"HF_HUB_OFFLINE": "1"}).stdout.split()
    assert all(Path(p).is_relative_to(installed) for p in where), where  # not the source tree
    info = _run(installed, "info", "--model", "bundled", "--device", "cpu", cwd=tmp_path)
    assert info["model"]["name"] == "bundled"
    _run(installed, "samples", "--out", str(tmp_path / "s"), "--n", "2", cwd=tmp_path)
    sim = _run(installed, "similarity", "--captions", str(tmp_path / "s" / "pairs.csv"), "--device", "cpu", cwd=tmp_path)
    cos = sim["cosine"]
    assert len(cos) == 2 and all(cos[k][k] > 0 for k in range(2))
    # Every other kind of package data came along too: the lab's models and figures, replays, calibrations.
    check = ("import json; from mmexplore.robustness.evaluate import SHIPPED_RESULTS, cached_result, shipped_models; "
             "from mmexplore.relation.calibration import calibration_path; from mmexplore.settings import get_settings; "
             "print(json.dumps({'models': shipped_models(), 'results': len(list(SHIPPED_RESULTS.glob('*.json'))), "
             "'asr': cached_result('bundled-poison-p0.1', 'backdoor')['asr'], "
             "'replays': sorted(p.name for p in (get_settings().assets_dir / 'replays').iterdir()), "
             "'calibration': calibration_path('bundled').is_file()}))")
    shipped = json.loads(subprocess.run([str(py), "-c", check], cwd=tmp_path, capture_output=True, text=True, check=True,
                                        env={"HF_HUB_OFFLINE": "1"}).stdout)
    assert {"bundled", "bundled-poison-p0.1", "bundled-cleanclip-p0.03", "bundled-web", "bundled-web-defence"} \
        <= set(shipped["models"])
    assert shipped["results"] >= 24 and shipped["asr"] > 0.5 and shipped["calibration"]
    assert "clip" in shipped["replays"]
