"""The ComfyUI compatibility modules, imported by their ComfyUI names as packs do."""

from __future__ import annotations

import importlib
import importlib.util
import io

import pytest
import torch

from engine.context import ExecutionContext, Interrupted, InterruptFlag, reset_current, set_current
from nodes.plugins import install_compat


@pytest.fixture(autouse=True)
def compat(weft_paths):
    install_compat()


def test_folder_paths_maps_onto_weft_paths(weft_paths):
    import folder_paths

    assert folder_paths.get_input_directory() == str(weft_paths.input)
    assert folder_paths.get_output_directory() == str(weft_paths.output)
    assert folder_paths.get_temp_directory() == str(weft_paths.temp)
    assert folder_paths.get_directory_by_type("output") == str(weft_paths.output)
    assert folder_paths.get_directory_by_type("elsewhere") is None
    assert folder_paths.models_dir == str(weft_paths.models)
    lora = weft_paths.models / "loras" / "sub" / "style.safetensors"
    lora.parent.mkdir(parents=True)
    lora.write_bytes(b"x")
    (weft_paths.models / "loras" / "readme.txt").write_text("not a model")
    assert folder_paths.get_filename_list("loras") == ["sub/style.safetensors"]
    assert folder_paths.get_full_path("loras", "sub/style.safetensors") == str(lora)
    assert folder_paths.get_full_path("loras", "../../escape.safetensors") is None
    with pytest.raises(FileNotFoundError, match="loras"):
        folder_paths.get_full_path_or_raise("loras", "missing.safetensors")


def test_packs_can_add_their_own_model_folders(weft_paths, tmp_path):
    import folder_paths

    detectors = tmp_path / "detectors"
    detectors.mkdir()
    (detectors / "face.pt").write_bytes(b"x")
    folder_paths.folder_names_and_paths["detectors"] = ([str(detectors)], {".pt"})
    assert folder_paths.get_filename_list("detectors") == ["face.pt"]
    extra_loras = tmp_path / "more_loras"
    extra_loras.mkdir()
    (extra_loras / "b.safetensors").write_bytes(b"x")
    folder_paths.add_model_folder_path("loras", str(extra_loras))
    assert "b.safetensors" in folder_paths.get_filename_list("loras")
    assert extra_loras.resolve() in weft_paths.model_dirs("loras")  # Weft's own loaders see it


def test_annotated_paths_and_save_image_path(weft_paths):
    import folder_paths

    assert folder_paths.get_annotated_filepath("a.png [output]") == str(weft_paths.output / "a.png")
    assert folder_paths.get_annotated_filepath("a.png") == str(weft_paths.input / "a.png")
    (weft_paths.output / "shots").mkdir()
    (weft_paths.output / "shots" / "img_00007_.png").write_bytes(b"")
    folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path("shots/img", str(weft_paths.output))
    assert (folder, filename, counter, subfolder) == (str(weft_paths.output / "shots"), "img", 8, "shots")


def test_unknown_attribute_names_the_feature():
    import folder_paths

    with pytest.raises(AttributeError, match="folder_paths.no_such_thing is not supported in Weft"):
        folder_paths.no_such_thing  # noqa: B018
    assert not hasattr(folder_paths, "also_missing")


def test_unsupported_comfy_modules_raise_import_error():
    with pytest.raises(ImportError, match="comfy.samplers' is not supported in Weft"):
        importlib.import_module("comfy.samplers")
    with pytest.raises(ImportError, match="comfy_extras"):
        importlib.import_module("comfy_extras.nodes_mask")
    # feature tests with find_spec get "absent", not an exception
    assert importlib.util.find_spec("comfy_extras") is None
    assert importlib.util.find_spec("comfy.utils") is not None


def test_comfy_utils_helpers(tmp_path):
    import comfy.utils

    images = torch.rand(2, 3, 8, 8)
    assert comfy.utils.common_upscale(images, 4, 6, "area", "disabled").shape == (2, 3, 6, 4)
    assert comfy.utils.common_upscale(images, 16, 4, "nearest-exact", "center").shape == (2, 3, 4, 16)
    assert comfy.utils.common_upscale(images, 5, 5, "lanczos", "disabled").shape == (2, 3, 5, 5)
    assert comfy.utils.repeat_to_batch_size(torch.zeros(2, 3), 5).shape == (5, 3)
    path = tmp_path / "w.safetensors"
    comfy.utils.save_torch_file({"a": torch.ones(2)}, str(path), metadata={"k": "v"})
    state, meta = comfy.utils.load_torch_file(str(path), return_metadata=True)
    assert torch.equal(state["a"], torch.ones(2)) and meta == {"k": "v"}
    pickle = tmp_path / "w.pt"
    torch.save({"state_dict": {"b": torch.zeros(1)}}, pickle)
    assert list(comfy.utils.load_torch_file(str(pickle))) == ["b"]


def _context(events, flag):
    return ExecutionContext("p", "n1", "n1", "X", lambda e, d: events.append((e, d)), flag)


def test_progress_bar_and_interruption_use_the_node_context():
    import comfy.model_management as mm
    import comfy.utils

    events: list = []
    flag = InterruptFlag()
    token = set_current(_context(events, flag))
    try:
        bar = comfy.utils.ProgressBar(4)
        bar.update(1)
        bar.update_absolute(3)
        assert [d["value"] for e, d in events if e == "progress"] == [1, 3]
        assert not mm.processing_interrupted()
        mm.interrupt_current_processing()
        assert mm.processing_interrupted()
        with pytest.raises(mm.InterruptProcessingException):
            mm.throw_exception_if_processing_interrupted()
        with pytest.raises(Interrupted):
            bar.update(1)
    finally:
        reset_current(token)


def test_progress_bar_sends_previews():
    import comfy.utils
    from PIL import Image

    events: list = []
    token = set_current(_context(events, InterruptFlag()))
    try:
        bar = comfy.utils.ProgressBar(2)
        bar.update_absolute(1, preview=("JPEG", Image.new("RGB", (64, 32), (255, 0, 0)), 16))
    finally:
        reset_current(token)
    kinds = [e for e, _ in events]
    assert kinds == ["preview", "progress"]
    preview = events[0][1]
    assert preview["format"] == "JPEG" and preview["node"] == "n1"
    assert Image.open(io.BytesIO(preview["data"])).size == (16, 8)


def test_model_management_devices():
    import comfy.model_management as mm

    assert mm.intermediate_device() == torch.device("cpu")
    assert mm.get_torch_device().type in ("cpu", "cuda", "mps")
    mm.soft_empty_cache()
    with pytest.raises(NotImplementedError, match="load_models_gpu is not supported in Weft"):
        mm.load_models_gpu([])


def test_comfy_types_io_names():
    from comfy.comfy_types import IO, ComfyNodeABC, InputTypeDict  # noqa: F401

    assert IO.IMAGE == "IMAGE"
    assert IO.ANY == "LATENT" and "IMAGE" == IO.ANY
    assert IO.NUMBER == "INT" and IO.NUMBER != "STRING"
    assert f"{IO.MASK}" == "MASK"


def test_cli_args_answer_without_crashing():
    from comfy.cli_args import args

    assert args.disable_metadata is False
    assert args.some_flag_weft_does_not_know is None


def test_graph_modules():
    from comfy_execution.graph import DynamicPrompt, ExecutionBlocker
    from comfy_execution.graph_utils import GraphBuilder, is_link

    import engine

    assert ExecutionBlocker is engine.ExecutionBlocker
    assert is_link(["3", 0]) and is_link(["3", 1.0]) and not is_link(["3", "0"])
    dyn = DynamicPrompt({"1": {"class_type": "A", "inputs": {}}})
    assert dyn.get_node("1")["class_type"] == "A" and dyn.has_node("1") and not dyn.has_node("2")
    graph = GraphBuilder(prefix="x.")
    node = graph.node("A", value=1)
    node.set_input("other", None)
    assert graph.finalize() == {"x.1": {"class_type": "A", "inputs": {"value": 1}}}
