"""Open notebooks in JupyterLab in a real browser, as a student would, and Run All.

JupyterLab is started from this environment on 127.0.0.1 (a random free port, a random
token) with its root in a temporary copy of ``notebooks/``, so nothing the browser saves can
touch a committed file; runs, tables and figures go to a temporary ``ABANET_RESULTS`` /
``ABANET_CACHE`` at smoke scale. The browser is Debian's chromium (``/usr/bin/chromium``,
installed with ``apt-get install -y chromium`` when missing and possible), driven by
playwright (pip) with ``executable_path``; ``playwright install`` is never run. Without
chromium or playwright the test is skipped with the reason.

Checked per notebook: the kernel "Python (abanet)" is chosen without a kernel dialog, Run All
finishes with no error output, at least one image renders; notebook 02 renders a widget (its
side-output viewer, drawn from the record notebook 06 trains first).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("ABANET_CHROMIUM", "/usr/bin/chromium"))
KERNEL_DISPLAY = "Python (abanet)"
#: run in this order: 06 trains the smoke ABANet record whose figure maps 02's viewer shows
NOTEBOOKS = ("01_dataset_exploration.ipynb", "06_ablation_modules.ipynb", "02_model_definition.ipynb")
RUN_TIMEOUT_S = 600


def _chromium() -> Path | None:
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, timeout=600,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
    return CHROMIUM if CHROMIUM.exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _committed_state() -> str:
    out = subprocess.run(["git", "status", "--porcelain", "--", "notebooks", "results"], cwd=ROOT,
                         capture_output=True, text=True, check=False)
    return out.stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; the browser is the system chromium)")
    chromium = _chromium()
    if chromium is None:
        pytest.skip(f"no chromium at {CHROMIUM} and it could not be installed with apt-get")
    tmp = tmp_path_factory.mktemp("browser")
    work = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", work)
    port, token = _free_port(), uuid.uuid4().hex
    env = dict(os.environ, ABANET_SCALE="smoke", ABANET_RESULTS=str(tmp / "results"),
               ABANET_CACHE=str(tmp / "cache"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"))
    env.pop("ABANET_WIDGETS", None)  # the browser is a frontend: widgets, not static figures
    log = open(tmp / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--ServerApp.open_browser=False",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited: {(tmp / 'jupyterlab.log').read_text()[-2000:]}")
            time.sleep(0.5)
    before = _committed_state()
    try:
        yield {"url": url, "token": token, "chromium": chromium, "log": tmp / "jupyterlab.log"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    assert _committed_state() == before, "the browser test changed committed files"


def _run_all(page, name: str) -> dict:
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    # the kernel is chosen from the notebook's metadata: no "Select Kernel" dialog
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-Toolbar-kernelName, .jp-KernelName')]"
        ".some(e => e.textContent.trim().length > 0 && !e.textContent.includes('No Kernel'))", timeout=120_000)
    dialogs = page.locator(".jp-Dialog").count()
    kernel = page.locator(".jp-Toolbar-kernelName, .jp-KernelName").first.inner_text().strip()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_timeout(2000)
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent);
            return prompts.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t));
        }""", timeout=RUN_TIMEOUT_S * 1000, polling=2000)
    page.wait_for_timeout(1500)
    errors = page.evaluate(
        """() => [...document.querySelectorAll('.jp-OutputArea-output')]
                 .map(e => e.textContent)
                 .filter(t => t.includes('Traceback (most recent call last)') || /\\w+Error\\s+Traceback/.test(t))
                 .map(t => t.slice(0, 500))""")
    return {"name": name, "dialogs": dialogs, "kernel": kernel, "errors": errors,
            "images": page.locator(".jp-OutputArea-output img").count(),
            "widgets": page.locator(".jp-OutputArea-output .jupyter-widgets, .jp-OutputArea-output .widget-slider").count()}


def test_notebooks_run_all_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(lab["chromium"]), headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for name in NOTEBOOKS:
                page.goto(f"{lab['url']}/lab/tree/{name}?token={lab['token']}&reset", timeout=120_000)
                results.append(_run_all(page, name))
                page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
                page.locator(".lm-Menu-itemLabel", has_text="Shut Down All Kernels").first.click()
                page.wait_for_timeout(500)
                if page.locator(".jp-Dialog button.jp-mod-accept").count():
                    page.locator(".jp-Dialog button.jp-mod-accept").first.click()
        finally:
            browser.close()
    for r in results:
        assert r["dialogs"] == 0, f"{r['name']}: a dialog opened (kernel choice?)"
        assert r["kernel"] == KERNEL_DISPLAY, f"{r['name']}: kernel {r['kernel']!r}, expected {KERNEL_DISPLAY!r}"
        assert not r["errors"], f"{r['name']}: error output: {r['errors'][:2]}"
        assert r["images"] >= 1, f"{r['name']}: no image rendered"
    by_name = {r["name"]: r for r in results}
    assert by_name["02_model_definition.ipynb"]["widgets"] >= 1, "notebook 02's viewer did not render a widget"
