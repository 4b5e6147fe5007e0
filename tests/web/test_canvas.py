"""Canvas mechanics: pan, zoom, minimap, reroutes, bypass, search ranking, the default
workflow, and the frame time of panning a 500-node graph."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path

from tests.web.helpers import add_node, canvas_point, drag, links, new_tab, socket, state, title, wait_output, wire

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def test_first_open_default_workflow_runs(page):
    # a fresh browser profile: the first tab holds the default workflow, ready to queue
    g = state(page)
    types = sorted(n["type"] for n in g["nodes"])
    if "CheckpointLoaderSimple" in page.evaluate("Object.keys(window.weft.defs)"):
        assert types == sorted(
            [
                "CheckpointLoaderSimple",
                "CLIPTextEncode",
                "CLIPTextEncode",
                "EmptyLatentImage",
                "KSampler",
                "VAEDecode",
                "SaveImage",
            ]
        )
        return
    assert types == ["PreviewAny", "PrimitiveStringMultiline"]
    page.keyboard.press("Control+Enter")
    show = next(n["id"] for n in g["nodes"] if n["type"] == "PreviewAny")
    assert wait_output(page, show, "text") == ["Hello from Weft"]


def test_default_txt2img_graph_uses_first_checkpoint(page):
    """ComfyUI's default graph, built from an object_info that has the diffusion nodes."""
    result = page.evaluate(
        """async () => {
            const {defaultGraph} = await import("./js/defaults.js");
            const {normalizeDef} = await import("./js/state.js");
            const {toApiPrompt} = await import("./js/serialize.js");
            const req = (t, o = {}) => [t, o];
            const info = {
                CheckpointLoaderSimple: {input: {required: {ckpt_name: [["tiny-sd.safetensors", "other.safetensors"], {}]}},
                    output: ["MODEL", "CLIP", "VAE"], output_name: ["MODEL", "CLIP", "VAE"]},
                CLIPTextEncode: {input: {required: {text: req("STRING", {multiline: true}), clip: req("CLIP")}},
                    output: ["CONDITIONING"]},
                EmptyLatentImage: {input: {required: {width: req("INT", {default: 512}), height: req("INT", {default: 512}),
                    batch_size: req("INT", {default: 1})}}, output: ["LATENT"]},
                KSampler: {input: {required: {model: req("MODEL"), seed: req("INT", {default: 0, control_after_generate: true}),
                    steps: req("INT", {default: 20}), cfg: req("FLOAT", {default: 8, step: 0.1}),
                    sampler_name: [["euler", "ddim"], {}], scheduler: [["normal", "karras"], {}], positive: req("CONDITIONING"),
                    negative: req("CONDITIONING"), latent_image: req("LATENT"), denoise: req("FLOAT", {default: 1})}},
                    input_order: {required: ["model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative", "latent_image", "denoise"]},
                    output: ["LATENT"]},
                VAEDecode: {input: {required: {samples: req("LATENT"), vae: req("VAE")}}, output: ["IMAGE"]},
                SaveImage: {input: {required: {images: req("IMAGE"), filename_prefix: req("STRING", {default: "ComfyUI"})}},
                    output: [], output_node: true},
            };
            const defs = {};
            for (const [k, v] of Object.entries(info)) defs[k] = normalizeDef(k, v);
            const g = defaultGraph(defs);
            return {g, api: toApiPrompt(g, defs)};
        }"""
    )
    api = result["api"]
    by_type = {}
    for node_id, entry in api.items():
        by_type.setdefault(entry["class_type"], []).append((node_id, entry["inputs"]))
    ((ckpt_id, ckpt),) = by_type["CheckpointLoaderSimple"]
    assert ckpt == {"ckpt_name": "tiny-sd.safetensors"}
    ((ks_id, ks),) = by_type["KSampler"]
    assert ks["model"] == [ckpt_id, 0] and ks["steps"] == 20 and ks["cfg"] == 8 and ks["sampler_name"] == "euler"
    texts = {inputs["text"]: inputs for _, inputs in by_type["CLIPTextEncode"]}
    assert "text, watermark" in texts and all(t["clip"] == [ckpt_id, 1] for t in texts.values())
    ((_, decode),) = by_type["VAEDecode"]
    assert decode == {"samples": [ks_id, 0], "vae": [ckpt_id, 2]}
    ((_, save),) = by_type["SaveImage"]
    assert save["filename_prefix"] == "ComfyUI"
    assert len(result["g"]["links"]) == 9


def test_match_type_sockets_take_their_templates_allowed_types(page):
    """A v3 ``io.MatchType`` socket (``COMFY_MATCHTYPE_V3`` in /object_info) links like its
    template's allowed types, on the input and on the output bound to that template."""
    result = page.evaluate(
        """async () => {
            const {normalizeDef, typesCompatible} = await import("./js/state.js");
            const template = {template_id: "number", allowed_types: "INT,FLOAT"};
            const def = normalizeDef("Pick", {
                input: {required: {a: ["COMFY_MATCHTYPE_V3", {template}],
                                   any: ["COMFY_MATCHTYPE_V3", {template: {template_id: "t", allowed_types: "*"}}]}},
                output: ["COMFY_MATCHTYPE_V3", "COMFY_MATCHTYPE_V3", "INT"],
                output_matchtypes: ["number", "t", null],
            });
            return {inputs: def.inputs.map((i) => i.type), outputs: def.outputs.map((o) => o.type),
                    intIn: typesCompatible("INT", def.inputs[0].type),
                    textIn: typesCompatible("STRING", def.inputs[0].type),
                    outToFloat: typesCompatible(def.outputs[0].type, "FLOAT"),
                    outToText: typesCompatible(def.outputs[0].type, "STRING")};
        }"""
    )
    assert result["inputs"] == ["INT,FLOAT", "*"] and result["outputs"] == ["INT,FLOAT", "*", "INT"]
    assert result["intIn"] and not result["textIn"] and result["outToFloat"] and not result["outToText"]


def test_pan_zoom_and_minimap(page, screenshots):
    page.screenshot(path=str(screenshots / "default-workflow.png"))
    new_tab(page)
    add_node(page, "MathInt", canvas_point(page, 0.3, 0.3), expect_type="MathInt")
    ds0 = state(page)["extra"]["ds"]
    drag(page, canvas_point(page, 0.5, 0.8), canvas_point(page, 0.6, 0.9))  # drag empty canvas: pan
    ds1 = state(page)["extra"]["ds"]
    assert round(ds1["offset"][0] - ds0["offset"][0]) == round(140 / ds0["scale"])
    page.mouse.move(*canvas_point(page, 0.5, 0.5))
    page.mouse.wheel(0, -240)  # zoom in around the cursor
    page.wait_for_function(f"() => window.weft.state.extra.ds.scale > {ds1['scale']}")
    box = page.locator("#minimap").bounding_box()
    page.mouse.click(box["x"] + 5, box["y"] + 5)  # jump to a corner of the map
    ds2 = state(page)["extra"]["ds"]
    assert ds2["offset"] != ds1["offset"]
    page.keyboard.press(".")  # fit view
    ds3 = state(page)["extra"]["ds"]
    assert ds3 != ds2


def test_reroute_and_bypass_keep_the_prompt_right(page):
    new_tab(page)
    a = add_node(page, "primitive int", canvas_point(page, 0.05, 0.3), expect_type="PrimitiveInt")
    mid = add_node(page, "MathInt", canvas_point(page, 0.3, 0.3), expect_type="MathInt")
    show = add_node(page, "preview as text", canvas_point(page, 0.65, 0.3), expect_type="PreviewAny")
    drag(
        page,
        socket(page, a, "output", 0),
        (lambda r: (r["left"] + 30, r["top"] + 8))(page.evaluate(f"window.weft.widgetClientRect({mid}, 'a')")),
    )
    wire(page, mid, 0, show, 0)
    assert links(page) == [(a, 0, mid, 0), (mid, 0, show, 0)]
    # right-click the middle of the second link: add a reroute point on it
    (x1, y1), (x2, y2) = socket(page, mid, "output", 0), socket(page, show, "input", 0)
    page.mouse.click((x1 + x2) / 2, (y1 + y2) / 2, button="right")
    page.click(".menu-item:has-text('Add reroute')")
    reroute = next(n for n in state(page)["nodes"] if n["type"] == "Reroute")
    assert links(page) == [(a, 0, mid, 0), (mid, 0, reroute["id"], 0), (reroute["id"], 0, show, 0)]
    assert reroute["outputs"][0]["type"] == "INT"
    prompt = page.evaluate("window.weft.apiPrompt()")
    assert prompt[str(show)]["inputs"] == {"source": [str(mid), 0]}
    # bypass the math node: its INT input passes straight through
    page.mouse.click(*title(page, mid))
    page.keyboard.press("Control+b")
    prompt = page.evaluate("window.weft.apiPrompt()")
    assert str(mid) not in prompt and prompt[str(show)]["inputs"] == {"source": [str(a), 0]}
    page.click("#queue-button")
    assert wait_output(page, show, "text") == ["0"]


def test_search_ranking(page):
    ranked = page.evaluate(
        """async () => {
            const {searchNodes} = await import("./js/search.js");
            const top = (q, f) => searchNodes(window.weft.defs, q, f).slice(0, 3).map(d => d.name);
            return {
                concat: top("concat"), abbrev: top("strcat"), display: top("int math"), category: top("utils/string"),
                description: top("number of characters"), typo_free: top("preview text"),
                filtered: searchNodes(window.weft.defs, "", {from: "output", type: "INT"}).map(d => d.name),
                none: top("zzzzqqq"),
            };
        }"""
    )
    assert ranked["concat"][0] == "StringConcatenate"
    assert ranked["abbrev"][0] == "StringConcatenate"
    assert ranked["display"][0] == "MathInt"
    assert ranked["category"][0].startswith("String")
    assert ranked["description"][0] == "StringLength"
    assert ranked["typo_free"][0] == "PreviewAny"
    assert "MathInt" in ranked["filtered"] and "StringLength" not in ranked["filtered"]
    assert ranked["none"] == []


def test_frame_time_panning_500_nodes(page, screenshots):
    new_tab(page)
    setup = page.evaluate(
        """async () => {
            const app = window.weft;
            const {connect, convertWidgetToInput} = await import("./js/state.js");
            app.cmd("Build benchmark graph", () => {
                const g = app.state;
                let prev = null;
                for (let i = 0; i < 500; i++) {
                    const type = i % 5 === 0 ? "PrimitiveInt" : (i % 5 === 4 ? "PreviewAny" : "MathInt");
                    const n = app.addNodeRaw(app.defs[type], [(i % 25) * 320, Math.floor(i / 25) * 260]);
                    if (type === "MathInt") convertWidgetToInput(g, n, app.defs.MathInt, "a");
                    if (prev) connect(g, prev.id, 0, n.id, 0);
                    prev = type === "PreviewAny" ? null : n;
                }
            });
            return {nodes: app.state.nodes.length, links: app.state.links.length};
        }"""
    )
    assert setup["nodes"] == 500 and setup["links"] > 300
    result = page.evaluate(
        """async () => {
            const app = window.weft, r = app.renderer;
            const measure = async (scale, frames) => {
                app.state.extra.ds = {scale, offset: [0, 0]};
                const intervals = [], draws = [], visible = [];
                let last = null;
                for (let i = 0; i < frames; i++) {
                    await new Promise(res => requestAnimationFrame(res));
                    const now = performance.now();
                    if (last !== null) intervals.push(now - last);
                    last = now;
                    const ds = app.state.extra.ds;
                    const dir = i < frames / 2 ? -1 : 1;  // pan across and back
                    ds.offset = [ds.offset[0] + dir * 14 / scale, ds.offset[1] + dir * 6 / scale];
                    const t0 = performance.now();
                    r.draw();
                    draws.push(performance.now() - t0);
                    visible.push(r.visibleCount);
                }
                const med = a => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
                const p95 = a => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length * 0.95)]; };
                return {scale, frame_median_ms: med(intervals), draw_median_ms: med(draws), draw_p95_ms: p95(draws),
                        visible_median: med(visible)};
            };
            return [await measure(1, 150), await measure(0.6, 150), await measure(0.35, 150), await measure(0.12, 120)];
        }"""
    )
    page.screenshot(path=str(screenshots / "bench-500-nodes.png"))
    machine = f"{cpu_model()} ({os.cpu_count()} cores, {platform.machine()}), Chromium {page.context.browser.version} headless, --disable-gpu"
    print(machine)
    for r in result:
        print(
            f"pan 500 nodes at zoom {r['scale']}: median frame {r['frame_median_ms']:.2f} ms, "
            f"median draw {r['draw_median_ms']:.2f} ms (p95 {r['draw_p95_ms']:.2f}), ~{r['visible_median']} nodes visible"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "frame-time.json").write_text(json.dumps({"machine": machine, "results": result}, indent=2))
    assert all(r["frame_median_ms"] > 0 and r["visible_median"] > 0 for r in result)
    assert statistics.mean(r["visible_median"] for r in result) > 20
