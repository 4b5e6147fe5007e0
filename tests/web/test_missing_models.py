"""Opening a workflow that needs what the server lacks: a ComfyUI workflow naming a missing
checkpoint, LoRA and input image, a sampler this server does not have and a custom node type;
then an API-format prompt. One dialog lists each missing file with the folder it belongs in
and each unknown node type; the widgets are marked on the canvas until a listed value is picked."""

from __future__ import annotations

import io
import json

from PIL import Image

from tests.web.helpers import new_tab, node, state, widget_center

CHECKPOINT = "sd_xl_base_1.0.safetensors"
LORA = "add_detail.safetensors"

COMFY_WORKFLOW = {
    "last_node_id": 5,
    "last_link_id": 2,
    "nodes": [
        {
            "id": 1,
            "type": "CheckpointLoaderSimple",
            "pos": [40, 60],
            "size": [315, 98],
            "flags": {},
            "order": 0,
            "mode": 0,
            "inputs": [],
            "outputs": [
                {"name": "MODEL", "type": "MODEL", "links": [1], "slot_index": 0},
                {"name": "CLIP", "type": "CLIP", "links": [2], "slot_index": 1},
                {"name": "VAE", "type": "VAE", "links": None, "slot_index": 2},
            ],
            "properties": {"Node name for S&R": "CheckpointLoaderSimple"},
            "widgets_values": [CHECKPOINT],
        },
        {
            "id": 2,
            "type": "LoraLoader",
            "pos": [420, 60],
            "size": [315, 126],
            "flags": {},
            "order": 1,
            "mode": 0,
            "inputs": [
                {"name": "model", "type": "MODEL", "link": 1},
                {"name": "clip", "type": "CLIP", "link": 2},
            ],
            "outputs": [
                {"name": "MODEL", "type": "MODEL", "links": None},
                {"name": "CLIP", "type": "CLIP", "links": None},
            ],
            "properties": {},
            "widgets_values": [LORA, 0.8, 0.8],
        },
        {
            "id": 3,
            "type": "KSamplerSelect",
            "pos": [40, 260],
            "size": [315, 58],
            "flags": {},
            "order": 2,
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "SAMPLER", "type": "SAMPLER", "links": None}],
            "properties": {},
            "widgets_values": ["my_custom_sampler"],
        },
        {
            "id": 4,
            "type": "UltimateSDUpscale",
            "pos": [420, 260],
            "size": [315, 200],
            "flags": {},
            "order": 3,
            "mode": 0,
            "inputs": [{"name": "image", "type": "IMAGE", "link": None}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": None}],
            "properties": {"cnr_id": "comfyui_ultimatesdupscale", "ver": "1.1.0"},
            "widgets_values": [2, 42, "fixed"],
        },
        {
            "id": 5,
            "type": "LoadImage",
            "pos": [780, 60],
            "size": [315, 314],
            "flags": {},
            "order": 4,
            "mode": 0,
            "inputs": [],
            "outputs": [
                {"name": "IMAGE", "type": "IMAGE", "links": None},
                {"name": "MASK", "type": "MASK", "links": None},
            ],
            "properties": {},
            "widgets_values": ["portrait-of-nobody.png", "image"],
        },
    ],
    "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 1, 2, 1, "CLIP"]],
    "groups": [],
    "config": {},
    "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
    "version": 0.4,
}


def open_file(page, path) -> None:
    with page.expect_file_chooser() as chooser:
        page.click("#menu-button")
        page.click(".menu-item:has-text('Open')")
    chooser.value.set_files(str(path))


def rows(page, section: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"#missing-dialog .{section} tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.innerText.trim()))"
    )


def marked_pixels(page, node_id: int, name: str) -> int:
    """Pixels of the widget drawn in the mark's orange (#ffa53b)."""
    r = page.evaluate(f"window.weft.widgetClientRect({node_id}, {json.dumps(name)})")
    png = page.screenshot(clip={"x": r["left"], "y": r["top"], "width": r["width"], "height": r["height"]})
    rgb = Image.open(io.BytesIO(png)).convert("RGB").tobytes()
    return sum(1 for i in range(0, len(rgb), 3) if rgb[i] > 225 and 140 < rgb[i + 1] < 190 and rgb[i + 2] < 100)


def test_comfyui_workflow_with_missing_models_and_nodes(page, tmp_path, screenshots):
    new_tab(page)
    path = tmp_path / "needs-models.json"
    path.write_text(json.dumps(COMFY_WORKFLOW))
    open_file(page, path)
    dialog = page.locator("#missing-dialog")
    dialog.wait_for()
    assert dialog.locator("h2").inner_text() == "Missing models and nodes"
    files = rows(page, "missing-files")
    assert [f[:2] for f in files] == [
        [CHECKPOINT, "models/checkpoints/"],
        [LORA, "models/loras/"],
        ["portrait-of-nobody.png", "input/"],
    ]
    assert "Load Checkpoint #1 · ckpt_name" in files[0][2]
    (missing_type,) = rows(page, "missing-types")
    assert missing_type[0] == "UltimateSDUpscale" and "#4" in missing_type[2]
    assert rows(page, "missing-values") == [["my_custom_sampler", "sampler_name", "KSamplerSelect #3 · sampler_name"]]
    page.screenshot(path=str(screenshots / "missing-models-dialog.png"))

    # a node in the list is one click away; Escape closes the dialog
    dialog.locator("button.node-link[data-node='2']").click()
    assert page.evaluate("[...window.weft.selection]") == [2]
    page.keyboard.press("Escape")
    assert dialog.count() == 0

    # the widgets are marked on the canvas; the missing node is a red placeholder
    assert node(page, 4)["missing"] is True
    assert marked_pixels(page, 1, "ckpt_name") > 20
    assert marked_pixels(page, 2, "lora_name") > 20
    assert marked_pixels(page, 2, "strength_model") == 0
    page.mouse.move(*widget_center(page, 1, "ckpt_name"))
    tip = page.locator(".tooltip:not([hidden])")
    tip.wait_for()
    assert f'"{CHECKPOINT}" is not on the server: put it in models/checkpoints/' in tip.inner_text()
    page.screenshot(path=str(screenshots / "missing-models-marked.png"))

    # picking a file the server has clears the mark
    page.mouse.click(*widget_center(page, 1, "ckpt_name"))
    page.click(".combo-menu .menu-item:has-text('weft-shapes.safetensors')")
    assert node(page, 1)["widgets_values"]["ckpt_name"] == "weft-shapes.safetensors"
    page.mouse.move(5, 300)
    assert marked_pixels(page, 1, "ckpt_name") == 0

    # the long list of samplers says the current value is not among them
    page.mouse.click(*widget_center(page, 3, "sampler_name"))
    note = page.locator(".combo-picker .combo-note")
    assert '"my_custom_sampler" is not one of this input\'s choices' in note.inner_text()
    page.keyboard.press("Enter")  # picks the first choice
    assert node(page, 3)["widgets_values"]["sampler_name"] != "my_custom_sampler"
    assert marked_pixels(page, 3, "sampler_name") == 0


def test_api_prompt_with_missing_models(page, tmp_path):
    new_tab(page)
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "7": {"class_type": "VAELoader", "inputs": {"vae_name": "sdxl_vae.safetensors"}},
        "9": {
            "class_type": "ControlNetLoader",
            "inputs": {"control_net_name": "weft-shapes-controlnet-mask.safetensors"},
        },
        "12": {"class_type": "NotARealNode", "inputs": {"model": ["4", 0]}},
    }
    path = tmp_path / "prompt.json"
    path.write_text(json.dumps(prompt))
    open_file(page, path)
    page.wait_for_selector("#missing-dialog")
    assert [f[:2] for f in rows(page, "missing-files")] == [
        ["v1-5-pruned-emaonly.safetensors", "models/checkpoints/"],
        ["sdxl_vae.safetensors", "models/vae/"],
    ]  # the ControlNet ships with Weft: not missing
    assert [t[0] for t in rows(page, "missing-types")] == ["NotARealNode"]
    assert page.locator("#missing-dialog .missing-values").count() == 0
    page.click("#missing-dialog .missing-foot button")
    assert page.locator("#missing-dialog").count() == 0
    assert {n["type"] for n in state(page)["nodes"]} >= {"CheckpointLoaderSimple", "VAELoader", "NotARealNode"}


def test_complete_workflow_opens_without_the_dialog(page, tmp_path):
    new_tab(page)
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "weft-shapes.safetensors"}}}
    path = tmp_path / "complete.json"
    path.write_text(json.dumps(prompt))
    open_file(page, path)
    page.wait_for_function("() => window.weft.state.nodes.length === 1")
    page.wait_for_selector(".toast:has-text('Opened complete.json')")
    assert page.locator("#missing-dialog").count() == 0
    assert marked_pixels(page, 1, "ckpt_name") == 0
