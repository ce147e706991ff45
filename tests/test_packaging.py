"""What a user installs: every module, asset and bundled dataset is in the wheel, and works.

Run against an installed (non-editable) package, as CI does, the installed files are compared
with the source tree; run from an editable checkout, a wheel is built and its listing compared.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import toolkit as tk

ROOT = Path(__file__).resolve().parent.parent
INSTALLED = Path(tk.__file__).resolve().parent
FROM_SOURCE = INSTALLED == ROOT / "toolkit"


def expected_files() -> set[str]:
    """Every file a wheel must carry, as paths inside it (``toolkit/...``)."""
    out: set[str] = set()
    for path in (ROOT / "toolkit").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            out.add(path.relative_to(ROOT).as_posix())
    for path in (ROOT / "datasets").iterdir():
        if path.is_file():
            out.add(f"toolkit/_datasets/{path.name}")
    return out


def test_ci_tests_the_installed_package() -> None:
    # .ci/run sets this: there the suite must run against what `pip install` put in the venv
    if os.environ.get("STREAMBENCH_REQUIRE_INSTALLED") == "1":
        assert not FROM_SOURCE, f"toolkit was imported from the source tree ({INSTALLED})"


def test_every_file_is_in_the_package(tmp_path: Path) -> None:
    want = expected_files()
    assert {"toolkit/widgets/panels.js", "toolkit/widgets/panels.css"} <= want
    assert "toolkit/templates/gemma3.jinja" in want and "toolkit/_datasets/demo.jsonl" in want
    if FROM_SOURCE:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), ROOT],
            check=True,
            timeout=300,
        )
        (wheel,) = tmp_path.glob("streambench-*.whl")
        with zipfile.ZipFile(wheel) as z:
            have = {n for n in z.namelist() if n.startswith("toolkit/")}
    else:
        have = {
            "toolkit/" + p.relative_to(INSTALLED).as_posix()
            for p in INSTALLED.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
    assert sorted(want - have) == [], "missing from the wheel"
    assert sorted(have - want) == [], "in the wheel but not in the source tree"


def test_every_module_imports() -> None:
    names = [m.name for m in pkgutil.walk_packages(tk.__path__, "toolkit.")]
    assert {"toolkit.widgets.panels", "toolkit.providers.openai_chat", "toolkit.sim.app"} <= set(
        names
    )
    for name in names:
        if name != "toolkit.__main__":  # runs the CLI when imported
            importlib.import_module(name)


def test_assets_load_from_the_package() -> None:
    from toolkit import local, tasks

    assert (local.TEMPLATES / "gemma3.jinja").is_file()
    assert tasks.bundled_path("demo") is not None
    assert len(tk.datasets.list()) >= 4
    from toolkit.widgets import panels

    assert "export default" in (panels.HERE / "panels.js").read_text()


def test_version_is_one_number_everywhere() -> None:
    assert importlib.metadata.version("streambench") == tk.__version__
    out = subprocess.run(
        [sys.executable, "-m", "toolkit", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"streambench {tk.__version__}"


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "streambench"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"streambench {tk.__version__}"
