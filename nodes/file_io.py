"""File nodes beyond LoadImage/SaveImage: latents on disk and images from the output folder.

* SaveLatent / LoadLatent use ComfyUI's ``.latent`` format, so latents travel between the two:
  a safetensors file with the raw latents as ``latent_tensor`` and an empty
  ``latent_format_version_0`` marker (files without it are from before ComfyUI stored raw
  latents and are scaled by 1/0.18215 on loading). The prompt and workflow go in the
  metadata, as in saved PNGs.
* LoadImageOutput is LoadImage over the output folder: its choices are ComfyUI's
  ``"name.png [output]"`` form, so a generated image feeds the next run without copying it.

Paths go through :func:`nodes.paths.safe_join`; a prompt cannot reach outside the folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from .api import Combo, Hidden, Input, Node, Output, Result, String
from .diffusion.image import IMAGE_EXTENSIONS, LoadImage
from .paths import UnsafePathError, get_paths, safe_join
from .tensors import latent_input

LATENT_SUFFIX = ".latent"
#: ComfyUI's scale of the latents in files written before the format marker existed
LEGACY_LATENT_SCALE = 0.18215


def latent_files() -> list[str]:
    """``.latent`` files directly in input/ (ComfyUI lists no subfolders here), sorted."""
    root = get_paths().input
    if not root.is_dir():
        return []
    return sorted(name for name in os.listdir(root) if name.endswith(LATENT_SUFFIX) and (root / name).is_file())


def annotated_path(name: Any, input_name: str) -> Path:
    """The file behind ``"file"`` (input/) or ``"file [output]"``/``"[temp]"``; errors name the input."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"input '{input_name}': no file given")
    match = re.fullmatch(r"(.*) \[(input|output|temp)\]", name)
    filename, kind = (match.group(1), match.group(2)) if match else (name, "input")
    try:
        path = safe_join(get_paths().directory(kind), filename)
    except UnsafePathError as exc:
        raise ValueError(f"input '{input_name}': {exc}") from exc
    if not path.is_file():
        raise FileNotFoundError(f"input '{input_name}': file {name!r} not found in {kind}/")
    return path


class SaveLatent(Node):
    category = "_for_testing"
    description = (
        "Saves the latent as a .latent file (ComfyUI's format) in the output folder, with the prompt and "
        "workflow in its metadata."
    )
    output_node = True
    inputs = (
        Input("samples", "LATENT"),
        String("filename_prefix", "latents/ComfyUI"),
        Hidden("prompt", "PROMPT"),
        Hidden("extra_pnginfo", "EXTRA_PNGINFO"),
    )
    outputs = ()

    def run(
        self, samples: dict, filename_prefix: str = "ComfyUI", prompt: Any = None, extra_pnginfo: Any = None
    ) -> Result:
        import torch
        from safetensors.torch import save_file

        from .diffusion.image import save_path

        tensor = latent_input("samples", samples)
        folder, subfolder, base, counter = save_path("output", filename_prefix, torch.zeros((0, 0, 3)))
        metadata = {"prompt": json.dumps(prompt) if prompt is not None else ""}
        if isinstance(extra_pnginfo, dict):
            metadata.update({str(k): json.dumps(v) for k, v in extra_pnginfo.items()})
        filename = f"{base}_{counter:05}_{LATENT_SUFFIX}"
        save_file(
            {"latent_tensor": tensor.detach().cpu().contiguous(), "latent_format_version_0": torch.tensor([])},
            str(folder / filename),
            metadata=metadata,
        )
        return Result(ui={"latents": [{"filename": filename, "subfolder": subfolder, "type": "output"}]})


class LoadLatent(Node):
    category = "_for_testing"
    description = "Loads a .latent file (ComfyUI's format) from the input folder."
    inputs = (Combo("latent", latent_files),)
    outputs = (Output("LATENT"),)
    validates_inputs = ("latent",)

    @classmethod
    def fingerprint(cls, latent: Any = None, **_: Any) -> Any:
        try:
            return hashlib.sha256(annotated_path(latent, "latent").read_bytes()).hexdigest()
        except (ValueError, OSError):
            return float("nan")

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        try:
            annotated_path(inputs.get("latent"), "latent")
        except (ValueError, FileNotFoundError) as exc:
            return str(exc)
        return True

    def run(self, latent: str) -> tuple:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = annotated_path(latent, "latent")
        try:
            content = load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"input 'latent': {path.name} is not a .latent (safetensors) file ({exc})") from exc
        if "latent_tensor" not in content:
            raise ValueError(f"input 'latent': {path.name} has no 'latent_tensor'; not a latent file")
        scale = 1.0 if "latent_format_version_0" in content else 1.0 / LEGACY_LATENT_SCALE
        return ({"samples": content["latent_tensor"].float() * scale},)


def output_images() -> list[str]:
    """Images under output/, as ``"sub/name.png [output]"``, newest first (ComfyUI's remote list
    feeds the same form; its refresh picks the first, which is then the latest result)."""
    root = get_paths().output
    if not root.is_dir():
        return []
    found: list[tuple[float, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(root)
        for name in filenames:
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith("."):
                path = Path(dirpath) / name
                found.append((path.stat().st_mtime, f"{(rel / name).as_posix()} [output]"))
    return [name for _, name in sorted(found, key=lambda item: (-item[0], item[1]))]


class LoadImageOutput(LoadImage):
    display_name = "Load Image (from Outputs)"
    category = "image"
    experimental = True
    description = (
        "Load an image from the output folder. When the refresh button is clicked, the node will update the "
        "image list and automatically select the first image, allowing for easy iteration."
    )
    # ComfyUI's front end fills this list from a route (its "remote" option); Weft lists the files
    # here, so every client sees them without that route
    inputs = (Combo("image", output_images, image_upload=True, image_folder="output"),)


NODES = [SaveLatent, LoadLatent, LoadImageOutput]
