"""Canvas draw time, before and after a change, in one run: the working tree's ``web/`` against
the files of a git revision, side by side in one Chromium, in alternating rounds.

The scene is ``test_frame_time_500_nodes_with_panels_open``'s (``tests/web/test_walkthrough.py``):
a 500-node graph (MathInt chains) and 12 Markdown notes, with the error panel, the images dock and
the queue panel open (``--nothing-open``: the same graph in a plain tab), panned 150 frames at
zoom 1, 0.6, 0.35 and 120 at 0.12, ``Renderer.draw`` called once per animation frame. Two pages
are opened on one server: one loads the working tree, the other gets the revision's copy of
every script and style under ``web/`` that differs (``--files``: only those named; the browser's
requests for them are answered from ``git show``; files new in the working tree are left alone,
as the revision's files do not import them). Rounds alternate which page goes first, so both
see the same machine load.

Per zoom it prints the wall time of ``draw()`` (``performance.now``, as the tests measure it) and
its thread time: the CPU time of the same frames' animation-frame callbacks from Chromium's
trace (``tdur`` of ``FireAnimationFrame``), which does not grow when other jobs take the core
away. On a loaded machine the thread time is the figure to compare; the wall-time p95 there is
mostly waiting for the CPU. ``--pixels`` instead draws both pages at a few zooms and offsets and
counts the pixels that differ.

    python bench/canvas_ab.py [--against HEAD] [--files js/render.js,...] [--rounds 5] [--nothing-open] [--pixels]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import start_server  # noqa: E402
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, _open_canvas, web_registry  # noqa: E402
from tests.web.test_canvas import cpu_model  # noqa: E402
from tests.web.test_walkthrough import refused_length_node  # noqa: E402

ZOOMS = [(1, 150), (0.6, 150), (0.35, 150), (0.12, 120)]

BUILD = """async () => {
    const app = window.weft;
    const {connect, convertWidgetToInput} = await import("./js/state.js");
    const {VIRTUAL_DEFS} = await import("./js/defaults.js");
    app.cmd("Build benchmark graph", () => {
        const g = app.state;
        let prev = null;
        for (let i = 0; i < 500; i++) {
            const type = i % 5 === 0 ? "PrimitiveInt" : (i % 5 === 4 ? "PreviewAny" : "MathInt");
            const n = app.addNodeRaw(app.defs[type], [(i % 25) * 320, 400 + Math.floor(i / 25) * 260]);
            if (type === "MathInt") convertWidgetToInput(g, n, app.defs.MathInt, "a");
            if (prev) connect(g, prev.id, 0, n.id, 0);
            prev = type === "PreviewAny" ? null : n;
        }
        for (let i = 0; i < 12; i++) {
            const note = app.addNodeRaw(VIRTUAL_DEFS.MarkdownNote, [i * 640 + 160, 420 + (i % 4) * 1300]);
            note.widgets_values.text = `## Note ${i}\\n\\nSome **bold** text, a list:\\n\\n- one\\n- two`;
        }
    });
}"""

# the tests' pan, with draw() called inside the animation-frame callback (one traced event each)
PAN = """([scale, frames]) => new Promise(done => {
    const app = window.weft, r = app.renderer;
    app.state.extra.ds = {scale, offset: [0, -400]};
    const draws = [];
    let i = 0;
    const step = () => {
        const ds = app.state.extra.ds;
        const dir = i < frames / 2 ? -1 : 1;
        ds.offset = [ds.offset[0] + dir * 14 / scale, ds.offset[1] + dir * 6 / scale];
        const t0 = performance.now();
        r.draw();
        draws.push(performance.now() - t0);
        if (++i < frames) requestAnimationFrame(step); else done(draws);
    };
    requestAnimationFrame(step);
})"""

# a few states the plain graph lacks: bypassed, muted, collapsed, a cut title, a selection, a group
VARIETY = """() => {
    const app = window.weft, g = app.state;
    g.nodes[3].mode = 4; g.nodes[7].mode = 2; g.nodes[11].collapsed = true;
    g.nodes[12].title = "A very long title that will not fit in the title bar of this node at all";
    app.selection.add(g.nodes[2].id); app.selection.add(g.nodes[8].id);
    g.groups.push({title: "Group one", bounding: [-20, 300, 900, 600], color: "#3f789e"});
}"""

SNAPSHOT = """([scale, ox, oy]) => {
    const app = window.weft, r = app.renderer;
    app.state.extra.ds = {scale, offset: [ox, oy]};
    r.draw(); r.draw();
    return [r.canvas.toDataURL(), r.minimap.toDataURL()];
}"""


def changed_files(rev: str, only: list[str]) -> dict[str, bytes]:
    """Path under web/ -> the revision's content, for the scripts and styles the working tree
    changed (``only``: just these; index.html is a template the server renders, never swapped)."""
    names = subprocess.run(
        ["git", "diff", "--name-only", rev, "--", "web/"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    names = [n for n in names if n.endswith((".js", ".css")) and (not only or n.removeprefix("web/") in only)]
    old = {}
    for name in names:
        shown = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, capture_output=True)
        if shown.returncode == 0:  # absent there: new in the working tree, and unused by the old files
            old[name.removeprefix("web/")] = shown.stdout
    return old


def open_page(browser: Any, url: str, old: dict[str, bytes] | None, panels: bool) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    for name, body in (old or {}).items():
        kind = "text/javascript" if name.endswith(".js") else "text/css"

        def answer(route: Any, request: Any, body: bytes = body, kind: str = kind) -> None:
            route.fulfill(body=body, content_type=kind)

        context.route(f"**/{name}*", answer)
    errors: list[str] = []
    page = _open_canvas(context, url, errors)
    if panels:
        refused_length_node(page)  # a tab whose error panel stays open over the graph built next
        page.click("#images-toggle")
        page.click("#queue-toggle")
    else:
        page.click("#tab-add")
    page.evaluate(BUILD)
    page.bench_errors = errors
    return page


def traced_pan(browser: Any, page: Any, scale: float, frames: int) -> tuple[list[float], list[float]]:
    """draw()'s wall times, and the thread times of the same frames' callbacks from the trace."""
    browser.start_tracing(page=page, categories=["devtools.timeline"])
    wall = page.evaluate(PAN, [scale, frames])
    trace = json.loads(browser.stop_tracing())
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    by_process: dict[int, list[dict]] = {}
    for e in events:
        if e.get("name") == "FireAnimationFrame" and e.get("ph") == "X" and "tdur" in e:
            by_process.setdefault(e["pid"], []).append(e)
    ours = sorted(max(by_process.values(), key=len), key=lambda e: e["ts"]) if by_process else []
    return wall, [e["tdur"] / 1000 for e in ours[-frames:]]


def quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]  # the tests' definition (p95: index 0.95 n)


def measure(browser: Any, pages: dict[str, Any], rounds: int) -> dict[str, dict[float, dict[str, list]]]:
    out = {v: {z: {"wall": [], "cpu": [], "run_p95": []} for z, _ in ZOOMS} for v in pages}
    names = list(pages)
    for n in range(rounds):
        for v in names if n % 2 == 0 else names[::-1]:
            for zoom, frames in ZOOMS:
                wall, cpu = traced_pan(browser, pages[v], zoom, frames)
                out[v][zoom]["wall"] += wall
                out[v][zoom]["cpu"] += cpu
                out[v][zoom]["run_p95"].append(quantile(wall, 0.95))
    return out


def report(results: dict[str, dict[float, dict[str, list]]]) -> None:
    print(
        "| zoom | "
        + " | ".join(f"{v}: draw median / p95, wall (ms) | {v}: thread median / p95" for v in results)
        + " |"
    )
    print("|---" * (1 + 2 * len(results)) + "|")
    for zoom, _ in ZOOMS:
        cells = []
        for v in results:
            r = results[v][zoom]
            cells.append(f"{quantile(r['wall'], 0.5):.1f} / {quantile(r['wall'], 0.95):.1f}")
            cells.append(f"{quantile(r['cpu'], 0.5):.2f} / {quantile(r['cpu'], 0.95):.2f}")
        print(f"| {zoom} | " + " | ".join(cells) + " |")
    for v in results:
        runs = {z: " ".join(f"{x:.1f}" for x in results[v][z]["run_p95"]) for z, _ in ZOOMS}
        print(f"{v}: wall p95 of each run by zoom: {runs}")


def compare_pixels(pages: dict[str, Any]) -> None:
    import numpy as np
    from PIL import Image

    def decode(url: str) -> Any:
        return np.array(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA")).astype(int)

    for page in pages.values():
        page.evaluate(VARIETY)
    for view in [
        (1, 0, -400),
        (1, -37.3, -411.7),
        (0.6, -12.7, -433.1),
        (0.5, -3.3, -380),
        (0.35, -21.1, -377.7),
        (0.12, 0, -400),
    ]:
        (new_canvas, new_map), (old_canvas, old_map) = (p.evaluate(SNAPSHOT, list(view)) for p in pages.values())
        for what, a, b in (("canvas", new_canvas, old_canvas), ("minimap", new_map, old_map)):
            diff = np.abs(decode(a) - decode(b)).max(axis=2)
            print(
                f"zoom {view[0]} offset {view[1:]} {what}: {int((diff > 0).sum())} of {diff.size} px differ, most by {diff.max()}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="HEAD", help="git revision whose web/ files are 'before'")
    parser.add_argument("--files", default="", help="only these (comma-separated, under web/: js/render.js,...)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nothing-open", action="store_true", help="no panels open (test_canvas.py's scene)")
    parser.add_argument("--pixels", action="store_true", help="compare what the two draw instead of timing")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    old = changed_files(args.against, [f for f in args.files.split(",") if f])
    print(f"before: {args.against} for {sorted(old) or 'nothing (no web/ file differs)'}")
    live = start_server(Path(tempfile.mkdtemp(prefix="weft-canvas-ab-")), web_registry())
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            panels = not args.nothing_open
            pages = {
                "after": open_page(browser, live.url, None, panels),
                "before": open_page(browser, live.url, old, panels),
            }
            print(
                f"{cpu_model()}, Chromium {browser.version} headless, --disable-gpu; panels {'open' if panels else 'closed'}"
            )
            if args.pixels:
                compare_pixels(pages)
            else:
                report(measure(browser, pages, args.rounds))
            for name, page in pages.items():
                if page.bench_errors:
                    print(f"{name}: errors in the page: {page.bench_errors}")
            browser.close()
    finally:
        live.stop()


if __name__ == "__main__":
    main()
