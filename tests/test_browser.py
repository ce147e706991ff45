"""The notebook UI as a user sees it: JupyterLab in Debian's Chromium, driven by Playwright.

Opens notebooks/01_quickstart.ipynb with one cell added at the end (one panel per outcome:
passed, invalid, error, and one that streams until the test interrupts the kernel), runs all
cells, and checks the panels in the DOM: partial text in several panels while they stream; the
verdict and the error message whole, coloured by outcome; even columns; padded text; hostile model
output shown as text. Then it saves the notebook (Ctrl+S, JupyterLab's default settings: no
widget state), shuts the kernel down, reopens it and checks that every model's final text and
footer are still there, and exports it with nbconvert. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "01_quickstart.ipynb"
TOKEN = "streambench-test"
WIDGET = "application/vnd.jupyter.widget-view+json"

# CI sets STREAMBENCH_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip.
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("STREAMBENCH_REQUIRE_BROWSER") != "1",
    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)",
)

# Appended to the quickstart (after its `sim.stop()` cell; it uses its `City`).
OUTCOMES_CELL = """\
# Added by tests/test_browser.py: one panel per outcome, and one that streams until interrupted.
from toolkit.sim import Profile

fast = Profile(ttft_s=0, tokens_per_s=0, jitter=0, quality=1.0, price_in=1, price_out=2)
profiles = {"good": fast, "bad": fast.with_(quality=0.0),
            "stalled": fast.with_(p_stall=1.0, stall_s=3600)}
outcomes = tk.sim.start(profiles, seed=1)  # seed 1: the quality-0 model leaves out "city"
url = outcomes.base_url
try:
    tk.compare(
        "Name a large city in Japan, as JSON.",
        [tk.Model("good", base_url=url, price_in=1, price_out=2),
         tk.Model("bad", base_url=url, price_in=1, price_out=2),
         tk.Model("broken", base_url=url.removesuffix("/v1")),  # no /v1 there: HTTP 404
         tk.Model("stalled", base_url=url, price_in=1, price_out=2, timeout=3600)],
        schema=City,
        retries=0,
    )
finally:
    outcomes.stop()
"""

BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# What the page shows of every panel group: live widgets (p = "sb": .sb-panels, .sb-panel,
# .sb-text...) or the static HTML that replaces them (p = "sbs").
DESCRIBE = """(p) => {
    const whole = (e) => {
        const s = getComputedStyle(e);
        return e.scrollWidth <= e.clientWidth + 1 && e.scrollHeight <= e.clientHeight + 1
            && s.textOverflow !== 'ellipsis' && s.whiteSpace !== 'nowrap';
    };
    return [...document.querySelectorAll(`.${p}-panels`)].map(g => ({
        width: g.clientWidth,
        panels: [...g.querySelectorAll(`.${p}-panel`)].map(box => {
            const rect = box.getBoundingClientRect();
            const body = box.querySelector(`.${p}-text`);
            const note = box.querySelector(`.${p}-note`);
            const verdict = box.querySelector(`.${p}-verdict`);
            const foot = box.querySelector(`.${p}-foot`);
            const fs = getComputedStyle(foot);
            const shown = (e) => Boolean(e) && !e.hidden && e.textContent.length > 0;
            return {
                name: box.querySelector(`.${p}-name`).textContent,
                state: box.dataset.state || '',
                outcome: box.dataset.outcome || '',
                border: getComputedStyle(box).borderTopColor,
                left: rect.left, top: Math.round(rect.top), width: rect.width,
                text: p === 'sb' ? body.firstChild.data
                    : (shown(note) ? '' : body.textContent),
                note: shown(note) ? note.textContent : '',
                note_whole: shown(note) ? whole(body) : null,
                verdict: shown(verdict) ? verdict.textContent : '',
                verdict_whole: shown(verdict) ? whole(verdict) : null,
                padding: parseFloat(getComputedStyle(body).paddingLeft),
                foot: [...foot.children].map(c => c.textContent),
                foot_lines: Math.round((foot.clientHeight - parseFloat(fs.paddingTop)
                    - parseFloat(fs.paddingBottom)) / parseFloat(fs.lineHeight)),
            };
        }),
    }));
}"""

# the groups of the quickstart's three compares and of the added cell, in order
NAMES = [
    ["gpt-5-mini", "gemini-2.5-flash", "claude-sonnet-4.5"],
    ["gpt-5-mini", "gemini-2.5-flash", "claude-sonnet-4.5"],
    ["gpt-5-mini", "gemini-2.5-flash", "claude-sonnet-4.5"],
    ["good", "bad", "broken", "stalled"],
]
HOSTILE = '<img src=x onerror="window.__pwned=1">'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """JupyterLab on the quickstart with the outcomes cell added at its end."""
    book = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    book.cells.append(nbformat.v4.new_code_cell(OUTCOMES_CELL))  # type: ignore[no-untyped-call]
    with jupyterlab(tmp_path, book, NOTEBOOK.name) as started:
        yield started


@contextlib.contextmanager
def jupyterlab(tmp_path: Path, book: Any, name: str) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """JupyterLab on a free loopback port with its own config, data and runtime folders,
    serving a folder that holds ``book`` as ``name``; stopped when the block ends."""
    work = tmp_path / "work"
    work.mkdir()
    nbformat.write(book, work / name)  # type: ignore[no-untyped-call]
    home = tmp_path / "jhome"
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "XDG_CONFIG_HOME": str(home / "xdg"),
        "XDG_CACHE_HOME": str(home / "xdg-cache"),
    }
    settings = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={work}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=work,
    )
    try:
        assert proc.stderr is not None
        log = []
        for line in proc.stderr:  # the server says when it listens
            log.append(line)
            if f"127.0.0.1:{port}/lab" in line:
                break
        else:
            pytest.fail("JupyterLab did not start:\n" + "".join(log[-20:]))
        yield f"http://127.0.0.1:{port}", work, env
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running(p: Any, tmp_path: Path, url: str, name: str, errors: list[str]) -> Iterator[Any]:
    """Debian's Chromium on JupyterLab's page of notebook ``name``, once its kernel is idle, with
    every cell set running (Run > Run All Cells); page errors are added to ``errors``."""
    context = p.chromium.launch_persistent_context(
        str(tmp_path / "chromium"),
        executable_path=CHROMIUM,
        headless=True,
        viewport={"width": 1400, "height": 1000},
        args=BROWSER_ARGS,
    )
    try:
        page = context.pages[0]
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/lab/tree/{name}?reset&token={TOKEN}")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
        page.click('.lm-MenuBar-itemLabel:text-is("Run")')
        page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
        yield page
    finally:
        context.close()


def wait_until(page: Any, script: str, what: str, timeout: float, polling: float = 100) -> None:
    """``page.wait_for_function``, failing with what the outputs show when it times out."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(script, timeout=timeout, polling=polling)
    except PlaywrightTimeout:
        shown = page.evaluate(
            """() => [...document.querySelectorAll('.jp-OutputArea-output')]
                .map(e => e.innerText.slice(0, 400)).join('\\n---\\n')"""
        )
        pytest.fail(f"timed out waiting for {what}; the outputs show:\n{shown}")


def rest(url: str, method: str, path: str) -> Any:
    """One call to the Jupyter server's REST API."""
    request = urllib.request.Request(
        f"{url}{path}", method=method, headers={"Authorization": f"token {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else None


def rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(float(x)) for x in colour[colour.index("(") + 1 : -1].split(",")[:3])


def is_green(colour: str) -> bool:
    r, g, b = rgb(colour)
    return g > r + 40 and g > b + 20


def check_outcome_colour(panel: dict[str, Any]) -> None:
    r, g, b = rgb(panel["border"])
    where = f"{panel['name']} ({panel['outcome']}, border {panel['border']})"
    if panel["outcome"] == "passed":
        assert is_green(panel["border"]), where
    else:  # fail and error are never green
        assert not is_green(panel["border"]), where
    if panel["outcome"] == "failed":  # amber
        assert r > g > b and r - b > 100, where
    if panel["outcome"] == "error":  # red
        assert r > g + 80 and r > b + 80, where
    if panel["outcome"] == "cancelled":  # grey
        assert max(r, g, b) - min(r, g, b) < 20, where


def check_rows(group: dict[str, Any], one_row: bool) -> None:
    """Rows as even as possible, equal columns that fill the row."""
    rows: dict[int, list[dict[str, Any]]] = {}
    for panel in group["panels"]:
        rows.setdefault(panel["top"], []).append(panel)
    sizes = [len(r) for r in rows.values()]
    names = [p["name"] for p in group["panels"]]
    assert max(sizes) - min(sizes) <= 1, (names, sizes)
    if one_row:
        assert len(rows) == 1, (names, sizes)
    widths = [p["width"] for p in group["panels"]]
    assert max(widths) - min(widths) < 1.5, (names, widths)
    first = next(iter(rows.values()))
    filled = first[-1]["left"] + first[-1]["width"] - first[0]["left"]
    assert abs(filled - group["width"]) < 3, (names, filled, group["width"])


def check_outcomes(group: dict[str, Any]) -> None:
    """The added cell's panels: passed, invalid, error, and (live) one still streaming."""
    good, bad, broken, stalled = group["panels"]
    assert (good["outcome"], bad["outcome"], broken["outcome"]) == ("passed", "failed", "error")
    assert good["verdict"] == "valid · passed" and good["verdict_whole"]
    assert bad["verdict"] == "invalid: city: Field required" and bad["verdict_whole"]
    assert '"city"' not in bad["text"] and '"country"' in bad["text"]
    # the error has no answer: its kind and whole message are the body, as text
    assert broken["text"] == "" and broken["verdict"] == ""
    assert broken["note"].startswith("bad_request: HTTP 404: Not Found (POST http://127.0.0.1:")
    assert broken["note"].endswith("the model id must exist there)") and broken["note_whole"]
    assert broken["foot"][0] == "error"
    for panel in (good, bad, broken):
        check_outcome_colour(panel)
    assert stalled["text"]  # it streamed part of its answer before it stalled


def check_final(groups: list[dict[str, Any]]) -> None:
    """Every group after the run: the static HTML that replaced the live panels."""
    assert [[p["name"] for p in g["panels"]] for g in groups] == NAMES
    check_outcomes(groups[3])
    stalled = groups[3]["panels"][3]
    assert stalled["outcome"] == "cancelled" and stalled["foot"][0] == "cancelled"
    assert stalled["verdict"] == "cancelled before the call finished"
    check_outcome_colour(stalled)
    for group in groups[:3]:
        for panel in group["panels"]:
            # status first: the finish reason is never the footer's first word
            assert panel["foot"][0] == "ok" and panel["foot"][1].startswith("TTFT"), panel
            assert panel["text"] and panel["padding"] > 0
            assert panel["foot_lines"] <= 2, panel  # one line, or two tidy parts
            check_outcome_colour(panel)
    for panel in groups[1]["panels"]:  # the schema compare: each shows its verdict whole
        assert panel["verdict"].startswith(("valid", "invalid")) and panel["verdict_whole"]
    assert [HOSTILE in p["text"] for p in groups[2]["panels"]] == [True] * 3
    for group in groups:
        check_rows(group, one_row=True)


def test_quickstart_streams_live_side_by_side(
    lab: tuple[str, Path, dict[str, str]], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    url, work, env = lab
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p, running(p, tmp_path, url, NOTEBOOK.name, errors) as page:
        # while streaming: several panels show partial text at the same time
        wait_until(
            page,
            """() => [...document.querySelectorAll('.sb-panel')].filter(p =>
                       p.dataset.state === 'streaming'
                       && p.querySelector('.sb-text').textContent.length > 10).length >= 2""",
            "two panels streaming at once",
            timeout=60_000,
            polling=20,
        )
        # Run All scrolls to the last cell: bring the streaming panels back into view
        page.locator(".sb-panels").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-quickstart-streaming.png"))
        streaming = page.evaluate(DESCRIBE, "sb")

        # the added cell: three panels are final while the fourth still streams
        wait_until(
            page,
            """() => {
                    const g = document.querySelector('.sb-panels');
                    const ps = g ? [...g.querySelectorAll('.sb-panel')] : [];
                    return ps.length === 4 && ps.slice(0, 3).every(p => p.dataset.outcome)
                        && ps[3].dataset.state === 'streaming'
                        && ps[3].querySelector('.sb-text').textContent.length > 0;
                }""",
            "the added cell's three outcomes while its fourth panel streams",
            timeout=120_000,
            polling=50,
        )
        live = page.evaluate(DESCRIBE, "sb")
        page.locator(".sb-panels").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-quickstart-outcomes-live.png"))
        page.click('.lm-MenuBar-itemLabel:text-is("Kernel")')
        page.click('.lm-Menu-itemLabel:text-is("Interrupt Kernel")')

        # at the end every live widget was replaced by its static rendering
        wait_until(
            page,
            """() => {
                    const prompts = [...document.querySelectorAll(
                        '.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent);
                    return document.querySelectorAll('.sbs-panels').length === 4
                        && !document.querySelector('.sb-panels')
                        && prompts.every(x => /\\[\\d+\\]/.test(x));
                }""",
            "every compare's static panels after the interrupt",
            timeout=120_000,
            polling=100,
        )
        final = page.evaluate(DESCRIBE, "sbs")
        security = page.evaluate(
            """() => ({
                    pwned: window.__pwned,
                    imgs: document.querySelectorAll('.sbs-panels img, .sb-panels img').length,
                })"""
        )
        page.locator(".sbs-panels").nth(3).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-quickstart-final.png"))

        # save with Ctrl+S, stop the kernel, reopen: JupyterLab's defaults save no widgets
        page.click(".jp-Notebook .jp-Cell .jp-InputPrompt >> nth=0")
        page.keyboard.press("Control+s")
        page.wait_for_function(
            "() => !document.querySelector('.jp-Notebook.jp-mod-dirty, .jp-mod-dirty')",
            timeout=30_000,
        )
        for session in rest(url, "GET", "/api/sessions"):
            rest(url, "DELETE", f"/api/sessions/{session['id']}")
        page.goto(f"{url}/lab/tree/{NOTEBOOK.name}?reset&token={TOKEN}")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
        wait_until(
            page,
            "() => document.querySelectorAll('.sbs-panels').length === 4",
            "the static panels in the reopened notebook",
            timeout=60_000,
        )
        reopened = page.evaluate(DESCRIBE, "sbs")
        shown = page.evaluate("() => document.querySelector('.jp-Notebook').innerText")
        page.locator(".sbs-panels").nth(1).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-quickstart-reopened.png"))
        # narrower, file browser open: still even rows, equal columns
        page.set_viewport_size({"width": 1100, "height": 1000})
        page.wait_for_function("() => window.innerWidth === 1100")
        narrow = page.evaluate(DESCRIBE, "sbs")
        page.locator(".sbs-panels").nth(3).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-quickstart-reopened-1100.png"))

    assert not errors, errors
    assert security == {"pwned": None, "imgs": 0}

    # live widgets: padded text, even columns; the finished panels' verdicts whole and coloured
    assert [[p["name"] for p in g["panels"]] for g in streaming][0] == NAMES[0]
    check_rows(streaming[0], one_row=True)
    assert all(panel["padding"] > 0 for panel in streaming[0]["panels"])
    assert len(live) == 1
    check_outcomes(live[0])
    check_rows(live[0], one_row=True)
    assert live[0]["panels"][3]["state"] == "streaming"

    # static final panels, then the same after saving and reopening
    check_final(final)
    check_final(reopened)
    assert content(reopened) == content(final)
    assert "Error displaying widget" not in shown
    for group in narrow:
        check_rows(group, one_row=len(group["panels"]) <= 3)

    # the saved file has the static outputs and no widget views; nbconvert's HTML has the texts
    saved = nbformat.read(work / NOTEBOOK.name, as_version=4)  # type: ignore[no-untyped-call]
    outputs = [o for c in saved.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    panels = [
        o for o in outputs if 'data-streambench="panels"' in o.get("data", {}).get("text/html", "")
    ]
    assert len(panels) == 4 and not any(WIDGET in o.get("data", {}) for o in outputs)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "html",
            str(work / NOTEBOOK.name),
            "--output-dir",
            str(tmp_path / "export"),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    exported = (tmp_path / "export" / NOTEBOOK.with_suffix(".html").name).read_text()
    assert HOSTILE not in exported  # escaped, never markup
    assert exported_panels(exported) == [
        {"name": p["name"], "text": p["text"] or p["note"], "foot": p["foot"]}
        for g in final
        for p in g["panels"]
    ]


class _Panels(HTMLParser):
    """Each static panel's name, body text and footer items in an exported HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.panels: list[dict[str, Any]] = []
        self._open: list[str | None] = []  # the sbs-* class of each open element, if any

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = next((v for k, v in attrs if k == "class" and v and v.startswith("sbs-")), None)
        if cls == "sbs-panel":
            self.panels.append({"name": "", "text": "", "foot": []})
        if "sbs-foot" in self._open and tag == "span":
            self.panels[-1]["foot"].append("")
        self._open.append(cls)

    def handle_endtag(self, tag: str) -> None:
        self._open.pop()

    def handle_data(self, data: str) -> None:
        if "sbs-name" in self._open:
            self.panels[-1]["name"] += data
        elif "sbs-text" in self._open:
            self.panels[-1]["text"] += data
        elif "sbs-foot" in self._open and self.panels[-1]["foot"]:
            self.panels[-1]["foot"][-1] += data


def exported_panels(page: str) -> list[dict[str, Any]]:
    parser = _Panels()
    parser.feed(page)
    for panel in parser.panels:  # the newline the HTML writes after <pre> is not the answer's
        panel["text"] = panel["text"].removeprefix("\n")
    return parser.panels


def content(groups: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """What the panels say, without where they are (to compare two page loads)."""
    keys = ("name", "outcome", "text", "note", "verdict", "foot")
    return [[{k: p[k] for k in keys} for p in g["panels"]] for g in groups]


def test_static_panels_fill_even_rows_for_1_to_12_models(tmp_path: Path) -> None:
    """The static panels' grid (the same ``columns`` value the live widget gets), laid out by
    Chromium for 1-12 panels at several widths: the columns ``even_columns`` picks for what
    fits, all of one width, filling the row."""
    from playwright.sync_api import sync_playwright

    from toolkit.widgets.panels import GAP_PX, MAX_COLUMNS, MIN_COLUMN_PX, even_columns, static_html

    widths = [300, 500, 700, 950, 1300]  # none at a threshold (k * 200 + (k - 1) * 8 px)
    groups = []
    for width in widths:
        for n in range(1, 13):
            names = [{"name": f"m{i}", "provider": "sim"} for i in range(n)]
            page = static_html(names, ["x"] * n, [""] * n, [{"status": "ok"}] * n)
            groups.append(f'<div style="width:{width}px">{page}</div>')
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_content("<body style='margin:0'>" + "".join(groups) + "</body>")
            laid_out = page.evaluate(
                """() => [...document.querySelectorAll('.sbs-panels')].map(g => ({
                    width: g.clientWidth,
                    lefts: [...g.children].map(c => Math.round(c.getBoundingClientRect().left)),
                    widths: [...g.children].map(c => c.getBoundingClientRect().width),
                }))"""
            )
        finally:
            browser.close()
    k = 0
    for width in widths:
        fit = min(MAX_COLUMNS, (width + GAP_PX) // (MIN_COLUMN_PX + GAP_PX))
        for n in range(1, 13):
            group = laid_out[k]
            k += 1
            columns = len(set(group["lefts"]))
            assert columns == even_columns(n, max(1, fit)), (width, n, group)
            assert max(group["widths"]) - min(group["widths"]) < 1, (width, n)
            filled = columns * group["widths"][0] + (columns - 1) * GAP_PX
            assert abs(filled - group["width"]) < 2, (width, n, filled)


GRID_NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "04_prompt_testing.ipynb"


def test_prompt_grid_streams_live(tmp_path: Path) -> None:
    """notebooks/04_prompt_testing.ipynb's live grid in JupyterLab: its setup and compare cells
    (the simulator slowed down, so the streams can be watched), one row per prompt variant and
    one column per model, streaming at once; then the static grid that replaces it."""
    from playwright.sync_api import sync_playwright

    book = nbformat.read(GRID_NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    code = [c for c in book.cells if c.cell_type == "code"]
    setup, grid = code[0], code[1]
    assert "tk.compare(prompts, models" in grid.source
    setup.source = setup.source.replace("speed=4", "speed=0.3")
    assert "speed=0.3" in setup.source
    book.cells = [setup, grid, nbformat.v4.new_code_cell("sim.stop()")]  # type: ignore[no-untyped-call]
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with (
        jupyterlab(tmp_path, book, GRID_NOTEBOOK.name) as (url, _, _),
        sync_playwright() as p,
        running(p, tmp_path, url, GRID_NOTEBOOK.name, errors) as page,
    ):
        wait_until(
            page,
            """() => {
                    const ps = [...document.querySelectorAll('.sb-panel')];
                    return ps.length === 6 && ps.filter(p => p.dataset.state === 'streaming'
                        && p.querySelector('.sb-text').textContent.length > 5).length >= 3;
                }""",
            "three panels of the grid streaming at once",
            timeout=90_000,
            polling=20,
        )
        page.locator(".sb-panels").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-prompt-grid-streaming.png"))
        live = page.evaluate(DESCRIBE, "sb")
        wait_until(
            page,
            "() => document.querySelectorAll('.sbs-panels').length === 1"
            " && !document.querySelector('.sb-panels')",
            "the static grid once every call ended",
            timeout=120_000,
        )
        final = page.evaluate(DESCRIBE, "sbs")
        page.locator(".sbs-panels").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-prompt-grid-final.png"))

    assert not errors, errors
    models = ["gpt-5-mini", "gemini-2.5-flash", "claude-sonnet-4.5"]
    names = [f"{prompt} · {model}" for prompt in ("terse", "steps") for model in models]
    for groups in (live, final):
        assert len(groups) == 1
        panels = groups[0]["panels"]
        assert [p["name"] for p in panels] == names
        # a grid: two rows (the prompts) of three equal columns (the models), aligned
        tops = sorted({p["top"] for p in panels})
        assert len(tops) == 2, tops
        lefts = [round(p["left"]) for p in panels]
        assert lefts[:3] == lefts[3:] and len(set(lefts)) == 3, lefts
        widths = [p["width"] for p in panels]
        assert max(widths) - min(widths) < 1.5, widths
    assert all(p["text"] for p in final[0]["panels"])
    assert all(p["foot"][0] == "ok" for p in final[0]["panels"])
