"""What the canvas keeps between frames (layouts, node shapes, text widths, the minimap's
picture) never shows a stale graph: after each kind of edit a frame drawn with the kept state is
the frame drawn from nothing, pixel for pixel, and a kept layout is the layout made fresh."""

from __future__ import annotations

from tests.web.helpers import new_tab

# Builds a few nodes of the kinds whose layout depends on something other than their size:
# a KSampler (control after generate, widgets to convert), a LoadImage (the picked file shows an
# image area), a PreviewAny (text output), and a row of MathInt nodes to fill the view.
BUILD = """() => {
    const app = window.weft;
    app.cmd("Build", () => {
        for (const [type, pos] of [["KSampler", [40, 60]], ["LoadImage", [420, 60]], ["PreviewAny", [760, 60]]]) {
            app.addNodeRaw(app.defs[type], pos);
        }
        for (let i = 0; i < 12; i++) app.addNodeRaw(app.defs.MathInt, [40 + (i % 4) * 300, 560 + Math.floor(i / 4) * 220]);
    });
    app.state.extra.ds = {scale: 0.8, offset: [10.3, 20.7]};
    return app.state.nodes.map(n => n.id);
}"""

# Draws twice with what the renderer keeps, then once with everything it keeps thrown away;
# returns whether canvas and minimap came out the same (and a digest to see that edits show).
SAME_AS_FRESH = """async () => {
    const app = window.weft, r = app.renderer;
    const {LayoutCache} = await import("./js/layout_cache.js");
    const {NodePainter} = await import("./js/paint.js");
    const {MinimapPicture} = await import("./js/minimap.js");
    const pixels = () => [r.canvas.toDataURL(), r.minimap.toDataURL()];
    r.draw(); r.draw();  // the second frame draws from what the first one kept
    const kept = pixels();
    const caches = [r.layoutCache, r.painter, r.minimapPicture, r.textWidths, r.truncCache];
    r.layoutCache = new LayoutCache();
    r.painter = new NodePainter(r);
    r.minimapPicture = new MinimapPicture();
    r.textWidths = new Map();
    r.truncCache = new Map();
    r.draw();
    const fresh = pixels();
    [r.layoutCache, r.painter, r.minimapPicture, r.textWidths, r.truncCache] = caches;
    return {canvas: kept[0] === fresh[0], minimap: kept[1] === fresh[1], digest: kept.map(p => p.length + ":" + p.slice(-64)).join()};
}"""

EDITS = {
    "move a node (in place)": "n => { n.pos[0] += 37; n.pos[1] -= 11; }",
    "resize a node (in place)": "n => { n.size[0] += 60; n.size[1] += 90; }",
    "turn a widget into an input": """n => { const app = window.weft;
        app.state.nodes.find(m => m.type === 'KSampler').inputs.push({name: 'steps', type: 'INT', widget: 'steps'}); }""",
    "drop control after generate (in place)": """n => {
        delete window.weft.state.nodes.find(m => m.type === 'KSampler').properties.control.seed; }""",
    "collapse a node": "n => { n.collapsed = true; }",
    "a text output arrives": """n => { const app = window.weft, p = app.state.nodes.find(m => m.type === 'PreviewAny');
        app.runtime.outputs[p.id] = {text: ['one\\ntwo\\nthree']}; }""",
    "more text merged into it": """n => { const app = window.weft, p = app.state.nodes.find(m => m.type === 'PreviewAny');
        const out = app.runtime.outputs[p.id]; out.text = [...out.text, 'four\\nfive\\nsix\\nseven']; }""",
    "a file picked for LoadImage": """n => {
        window.weft.state.nodes.find(m => m.type === 'LoadImage').widgets_values.image = 'picked.png'; }""",
    "a node deleted": """n => { const g = window.weft.state; g.nodes.splice(g.nodes.indexOf(n), 1); }""",
}


def test_frames_drawn_from_kept_state_match_fresh_frames_after_each_edit(page):
    new_tab(page)
    ids = page.evaluate(BUILD)
    digests = []
    first = page.evaluate(SAME_AS_FRESH)
    assert first["canvas"] and first["minimap"], first
    digests.append(first["digest"])
    for i, (edit, fn) in enumerate(EDITS.items()):
        target = ids[3 + i]  # a different MathInt each time (the KSampler, LoadImage, PreviewAny come first)
        page.evaluate(f"() => {{ const n = window.weft.state.nodes.find(m => m.id === {target}); ({fn})(n); }}")
        result = page.evaluate(SAME_AS_FRESH)
        assert result["canvas"], f"canvas drawn from kept state differs from a fresh one after: {edit}"
        assert result["minimap"], f"minimap drawn from kept state differs from a fresh one after: {edit}"
        digests.append(result["digest"])
    # each edit changed the picture (so the comparisons above compared something that moved)
    assert len(set(digests)) == len(digests), digests


def test_kept_layout_is_the_fresh_layout_after_each_change_it_reads(page):
    new_tab(page)
    page.evaluate(BUILD)
    result = page.evaluate(
        """async () => {
            const app = window.weft;
            const {LayoutCache} = await import("./js/layout_cache.js");
            const {layoutNode} = await import("./js/layout.js");
            const {convertWidgetToInput} = await import("./js/state.js");
            const cache = new LayoutCache(), rt = app.runtime;
            const ks = app.state.nodes.find(n => n.type === "KSampler");
            const show = app.state.nodes.find(n => n.type === "PreviewAny");
            const load = app.state.nodes.find(n => n.type === "LoadImage");
            const json = (n, def) => JSON.stringify(layoutNode(n, def || app.defFor(n), rt, null));
            const out = [];
            const check = (label, n, def) => {
                const before = cache.get(n, def || app.defFor(n), rt, null);
                out.push({label, same: JSON.stringify(before) === json(n, def), again: cache.get(n, def || app.defFor(n), rt, null) === before,
                          digest: JSON.stringify(before)});
            };
            check("start", ks);
            ks.size[1] = 900; check("taller", ks);
            ks.size[0] += 40; check("wider", ks);
            convertWidgetToInput(app.state, ks, app.defFor(ks), "cfg"); check("widget to input", ks);
            ks.inputs[ks.inputs.length - 1].widget = "steps"; check("another widget as the input", ks);
            delete ks.properties.control.seed; check("no control", ks);
            ks.collapsed = true; check("collapsed", ks);
            const def = {...app.defFor(ks), inputs: app.defFor(ks).inputs.slice(0, 3)};
            ks.collapsed = false; check("open", ks); check("another definition", ks, def);
            check("start", show);
            rt.outputs[show.id] = {text: ["a"]}; check("text", show);
            rt.outputs[show.id].text = ["a", "b\\nc\\nd"]; check("merged text", show);
            rt.previews[show.id] = "blob:preview"; check("preview", show);
            delete rt.previews[show.id]; delete rt.outputs[show.id];
            // start from no file: the server's input folder (shared by the web tests) may
            // already hold images, and LoadImage's default is then the first of them
            load.widgets_values.image = ""; check("start", load);
            load.widgets_values.image = "picked.png"; check("a file", load);
            load.widgets_values.image = ""; check("no file", load);
            return out;
        }"""
    )
    for step in result:
        assert step["same"], f"kept layout differs from a fresh one after: {step['label']}"
        assert step["again"], f"layout not kept when nothing changed after: {step['label']}"
    # every step but each node's start changed the layout it read
    unchanged = [
        b["label"]
        for a, b in zip(result[:-1], result[1:], strict=True)
        if b["label"] != "start" and a["digest"] == b["digest"]
    ]
    assert unchanged == [], unchanged
