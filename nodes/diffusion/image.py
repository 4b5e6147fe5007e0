"""IMAGE and file nodes: LoadImage, LoadImageMask, SaveImage, PreviewImage, resizing, batches.

Files live in the folders :mod:`nodes.paths` configures: LoadImage reads ``input/``,
SaveImage writes ``output/`` and PreviewImage ``temp/``, always through ``safe_join`` so a
prompt cannot reach outside them. Saved PNGs carry the prompt and the workflow as tEXt
chunks (``prompt``, ``workflow``...), so dropping one on the canvas restores its graph;
names follow ComfyUI's ``<prefix>_<counter:05>_.png`` with subfolders in the prefix.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import estimates as est
from ..api import Combo, Estimate, Float, Hidden, Input, Int, Node, Output, Result, String
from ..paths import UnsafePathError, get_paths, safe_join
from .latent import IMAGE_UPSCALE_METHODS, MAX_RESOLUTION, fill_aspect, resize_nchw

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


# -- input files -------------------------------------------------------------------------------


def input_images() -> list[str]:
    """Image files under input/ (subfolders with forward slashes), sorted, for the combo."""
    root = get_paths().input
    if not root.is_dir():
        return []
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        for name in filenames:
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith("."):
                found.append((rel / name).as_posix())
    return sorted(found, key=str.lower)


def _annotated(name: str) -> tuple[str, str]:
    """ComfyUI's ``"file.png [output]"`` form: (file, folder kind); plain names are input/."""
    match = re.fullmatch(r"(.*) \[(input|output|temp)\]", name)
    return (match.group(1), match.group(2)) if match else (name, "input")


def input_image_path(name: str, input_name: str = "image") -> Path:
    """The file behind an ``image`` combo value; errors name the node input."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"input '{input_name}': no image file given")
    filename, kind = _annotated(name)
    try:
        path = safe_join(get_paths().directory(kind), filename)
    except UnsafePathError as exc:
        raise ValueError(f"input '{input_name}': {exc}") from exc
    if not path.is_file():
        raise FileNotFoundError(
            f"input '{input_name}': image file {name!r} not found in {kind}/ (upload it or pick another file)"
        )
    return path


def _file_fingerprint(name: str) -> str:
    path = input_image_path(name)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    stat = path.stat()
    return f"{digest.hexdigest()}:{stat.st_mtime_ns}"


def _validate_image(name: Any, input_name: str = "image") -> bool | str:
    try:
        input_image_path(name, input_name)
    except (ValueError, FileNotFoundError) as exc:
        return str(exc)
    return True


def _open_frames(path: Path, input_name: str) -> list[Any]:
    from PIL import ImageOps, ImageSequence, UnidentifiedImageError

    from .. import limits

    image_module = limits.pillow()  # Pillow's bomb limit follows --max-image-pixels
    try:
        image = image_module.open(path)
    except (UnidentifiedImageError, OSError, image_module.DecompressionBombError) as exc:
        raise ValueError(f"input '{input_name}': {path.name} is not a readable image ({exc})") from exc
    # checked from the header, before any pixel is decoded
    limits.check_image_pixels(image.width, image.height, f"input '{input_name}': {path.name}")
    frames = []
    for frame in ImageSequence.Iterator(image):
        frames.append(ImageOps.exif_transpose(frame))
    return frames


def _to_float(frame: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(RGB [H, W, 3] 0..1, alpha [H, W] 0..1 or None) of one PIL frame."""
    import numpy as np
    import torch

    if frame.mode == "I":
        frame = frame.point(lambda v: v * (1 / 255))
    alpha = None
    if "A" in frame.getbands() or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        alpha = torch.from_numpy(np.asarray(rgba.getchannel("A")).astype(np.float32) / 255.0)
    rgb = torch.from_numpy(np.asarray(frame.convert("RGB")).astype(np.float32) / 255.0)
    return rgb, alpha


class _InputImageNode(Node):
    """Reads a file named by the ``image`` combo: cache key and checks come from the file.

    Besides the files of input/ listed in the combo, ComfyUI's ``"name.png [output]"`` (or
    ``[temp]``) form picks a file of another folder; ``validate`` checks the file itself.
    """

    validates_inputs = ("image",)

    @classmethod
    def fingerprint(cls, **inputs: Any) -> Any:
        try:
            return _file_fingerprint(inputs.get("image"))
        except (ValueError, FileNotFoundError, OSError):
            return float("nan")

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        return _validate_image(inputs.get("image"))


class LoadImage(_InputImageNode):
    display_name = "Load Image"
    category = "image"
    description = "Loads an image from the input folder; its alpha channel becomes the MASK (1 = transparent)."
    inputs = (Combo("image", input_images, image_upload=True, tooltip="A file in the input folder."),)
    outputs = (Output("IMAGE"), Output("MASK"))

    def run(self, image: str) -> tuple:
        import torch

        path = input_image_path(image)
        images, masks = [], []
        size = None
        for frame in _open_frames(path, "image"):
            rgb, alpha = _to_float(frame)
            if size is None:
                size = rgb.shape[:2]
            elif rgb.shape[:2] != size:
                continue  # frames of another size (some GIFs/ICOs) are skipped, as in ComfyUI
            images.append(rgb)
            masks.append(1.0 - alpha if alpha is not None else torch.zeros((64, 64), dtype=torch.float32))
        if not images:
            raise ValueError(f"input 'image': {path.name} has no frames")
        if any(m.shape != masks[0].shape for m in masks):
            masks = [m if m.shape == size else torch.zeros(size) for m in masks]
        return torch.stack(images), torch.stack(masks)


class LoadImageMask(_InputImageNode):
    display_name = "Load Image (as Mask)"
    category = "mask"
    description = "Loads one channel of an image from the input folder as a MASK (alpha is inverted: 1 = transparent)."
    inputs = (Combo("image", input_images, image_upload=True), Combo("channel", ["alpha", "red", "green", "blue"]))
    outputs = (Output("MASK"),)

    def run(self, image: str, channel: str) -> tuple:
        import numpy as np
        import torch

        frame = _open_frames(input_image_path(image), "image")[0]
        if frame.mode == "I":
            frame = frame.point(lambda v: v * (1 / 255))
        bands = frame.getbands()
        if channel == "alpha":
            if "A" not in bands and not (frame.mode == "P" and "transparency" in frame.info):
                return (torch.zeros((1, 64, 64), dtype=torch.float32),)
            values = np.asarray(frame.convert("RGBA").getchannel("A")).astype(np.float32) / 255.0
            return (1.0 - torch.from_numpy(values)[None],)
        letter = channel[0].upper()
        rgb = frame.convert("RGBA") if frame.mode not in ("RGB", "RGBA") else frame
        values = np.asarray(rgb.getchannel(letter)).astype(np.float32) / 255.0
        return (torch.from_numpy(values)[None],)


# -- output files ------------------------------------------------------------------------------


def _expand_prefix(prefix: str, image: torch.Tensor) -> str:
    """ComfyUI's prefix placeholders: %width%, %height%, %year% ... and %date:yyyy-MM-dd%."""
    now = time.localtime()
    parts = {
        "year": f"{now.tm_year}",
        "month": f"{now.tm_mon:02}",
        "day": f"{now.tm_mday:02}",
        "hour": f"{now.tm_hour:02}",
        "minute": f"{now.tm_min:02}",
        "second": f"{now.tm_sec:02}",
        "width": str(image.shape[-2]),
        "height": str(image.shape[-3]),
    }

    def date(match: re.Match) -> str:
        fmt = match.group(1)
        for token, value in (
            ("yyyy", parts["year"]),
            ("MM", parts["month"]),
            ("dd", parts["day"]),
            ("hh", parts["hour"]),
            ("mm", parts["minute"]),
            ("ss", parts["second"]),
        ):
            fmt = fmt.replace(token, value)
        return fmt

    prefix = re.sub(r"%date:([^%]+)%", date, prefix)
    return re.sub(r"%(\w+)%", lambda m: parts.get(m.group(1), m.group(0)), prefix)


def save_path(
    kind: str, prefix: str, image: torch.Tensor, input_name: str = "filename_prefix"
) -> tuple[Path, str, str, int]:
    """(folder, subfolder, base name, first free counter) for ``prefix`` under output/ or temp/."""
    root = get_paths().directory(kind)
    prefix = _expand_prefix(prefix, image).replace("\\", "/")
    subfolder, _, base = prefix.rpartition("/")
    if not base:
        raise ValueError(f"input '{input_name}': {prefix!r} has no file name after its folder")
    try:
        folder = safe_join(root, subfolder) if subfolder else root.resolve()
    except UnsafePathError as exc:
        raise ValueError(f"input '{input_name}': {exc}") from exc
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(base) + r"_(\d+)_?\.")
    counter = 0
    for entry in os.listdir(folder):
        match = pattern.match(entry)
        if match:
            counter = max(counter, int(match.group(1)))
    return folder, subfolder, base, counter + 1


def _png_info(prompt: Any, extra_pnginfo: Any) -> Any:
    """The PNG text chunks (prompt, workflow...), or ``None`` under ``--disable-metadata`` (as
    ComfyUI's SaveImage and PreviewImage: a user who shares pictures may not want to share
    the graph)."""
    from PIL.PngImagePlugin import PngInfo

    from ..launch_options import get_options

    if get_options().disable_metadata:
        return None
    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    if isinstance(extra_pnginfo, dict):
        for key, value in extra_pnginfo.items():
            info.add_text(str(key), json.dumps(value))
    return info


def to_uint8(image: torch.Tensor) -> Any:
    """One IMAGE ``[H, W, C]`` (0..1) as a uint8 numpy array, exactly as ComfyUI converts it.

    ComfyUI's SaveImage, PreviewImage and lanczos resize all do
    ``np.clip(255. * x, 0, 255).astype(np.uint8)``: scale in the image's own float type, clip,
    then *truncate*. Rounding instead moves about half the pixels up one grey level, so no PNG
    would be byte-identical to ComfyUI's for the same decoded image.
    """
    import numpy as np
    import torch

    x = image.detach().cpu()
    if x.dtype == torch.bfloat16:  # numpy has no bfloat16; ComfyUI's images are float32 anyway
        x = x.float()
    return np.clip(255.0 * x.numpy(), 0, 255).astype(np.uint8)


def save_images(
    images: Any, kind: str, prefix: str, prompt: Any, extra_pnginfo: Any, compress_level: int
) -> list[dict]:
    """Write each image as PNG; returns ComfyUI's ``ui.images`` entries.

    Pixels are truncated to 8 bits as ComfyUI does (:func:`to_uint8`), so the same IMAGE
    gives the same bytes here and there (with the same metadata and compression level).
    """
    from PIL import Image

    images = _image_batch("images", images)
    folder, subfolder, base, counter = save_path(kind, prefix, images[0])
    info = _png_info(prompt, extra_pnginfo)
    results = []
    for image in images:
        array = to_uint8(image)
        pil = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array[..., :3])
        filename = f"{base}_{counter:05}_.png"
        pil.save(folder / filename, pnginfo=info, compress_level=compress_level)
        results.append({"filename": filename, "subfolder": subfolder, "type": kind})
        counter += 1
    return results


def _image_batch(name: str, value: Any) -> torch.Tensor:
    import torch

    if not torch.is_tensor(value) or value.dim() != 4:
        shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
        raise ValueError(f"input '{name}' is not an IMAGE ([batch, height, width, channels]); got {shape}")
    if value.shape[0] == 0:
        raise ValueError(f"input '{name}' is an empty image batch")
    return value


class SaveImage(Node):
    display_name = "Save Image"
    category = "image"
    description = "Saves the images as PNG files in the output folder, with the prompt and workflow embedded."
    output_node = True
    inputs = (
        Input("images", "IMAGE", tooltip="The images to save."),
        String(
            "filename_prefix",
            "Weft",
            tooltip="File name prefix; may contain folders and %date:yyyy-MM-dd%, %width%, %height%.",
        ),
        Hidden("prompt", "PROMPT"),
        Hidden("extra_pnginfo", "EXTRA_PNGINFO"),
    )
    outputs = ()

    def run(self, images: Any, filename_prefix: str = "Weft", prompt: Any = None, extra_pnginfo: Any = None) -> Result:
        saved = save_images(images, "output", filename_prefix, prompt, extra_pnginfo, compress_level=4)
        return Result(ui={"images": saved})


class PreviewImage(Node):
    display_name = "Preview Image"
    category = "image"
    description = "Shows the images in the client; they are written to the temporary folder only."
    output_node = True
    inputs = (Input("images", "IMAGE"), Hidden("prompt", "PROMPT"), Hidden("extra_pnginfo", "EXTRA_PNGINFO"))
    outputs = ()

    def run(self, images: Any, prompt: Any = None, extra_pnginfo: Any = None) -> Result:
        suffix = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
        saved = save_images(images, "temp", f"Weft_temp_{suffix}", prompt, extra_pnginfo, compress_level=1)
        return Result(ui={"images": saved})


# -- image operations --------------------------------------------------------------------------


def _scale(image: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    x = image.movedim(-1, 1)
    return resize_nchw(x, width, height, method, crop).movedim(1, -1)


class ImageScale(Node):
    display_name = "Upscale Image"
    category = "image/upscaling"
    description = "Resizes images to a size (0 keeps the aspect ratio from the other side)."
    inputs = (
        Input("image", "IMAGE"),
        Combo("upscale_method", IMAGE_UPSCALE_METHODS),
        Int("width", 512, min=0, max=MAX_RESOLUTION, step=1),
        Int("height", 512, min=0, max=MAX_RESOLUTION, step=1),
        Combo("crop", ["disabled", "center"]),
    )
    outputs = (Output("IMAGE"),)

    @classmethod
    def estimate(cls, image: Any = None, width: int = 0, height: int = 0) -> Estimate | None:
        info = est.tensor(image, 4)
        if info is None:
            return None
        b, h, w, c = info.shape
        if width or height:
            width, height = est.fill_aspect(w, h, width, height)
            h, w = height, width
        return est.new_tensor((b, h, w, c), "width", est.describe("image", (b, h, w, c)))

    def run(self, image: Any, upscale_method: str, width: int, height: int, crop: str) -> tuple:
        image = _image_batch("image", image)
        if width == 0 and height == 0:
            return (image,)
        h, w = image.shape[1:3]
        width, height = fill_aspect(w, h, width, height)
        return (_scale(image, width, height, upscale_method, crop),)


class ImageScaleBy(Node):
    display_name = "Upscale Image By"
    category = "image/upscaling"
    description = "Resizes images by a factor."
    inputs = (
        Input("image", "IMAGE"),
        Combo("upscale_method", IMAGE_UPSCALE_METHODS),
        Float("scale_by", 1.0, min=0.01, max=8.0, step=0.01),
    )
    outputs = (Output("IMAGE"),)

    @classmethod
    def estimate(cls, image: Any = None, scale_by: float = 1.0) -> Estimate | None:
        info = est.tensor(image, 4)
        if info is None:
            return None
        b, h, w, c = info.shape
        shape = (b, max(1, round(h * scale_by)), max(1, round(w * scale_by)), c)
        return est.new_tensor(shape, "scale_by", est.describe("image", shape))

    def run(self, image: Any, upscale_method: str, scale_by: float) -> tuple:
        image = _image_batch("image", image)
        width, height = max(1, round(image.shape[2] * scale_by)), max(1, round(image.shape[1] * scale_by))
        return (_scale(image, width, height, upscale_method),)


class ImageInvert(Node):
    display_name = "Invert Image"
    category = "image"
    description = "Inverts the colours (1 - value)."
    inputs = (Input("image", "IMAGE"),)
    outputs = (Output("IMAGE"),)

    def run(self, image: Any) -> tuple:
        return (1.0 - _image_batch("image", image),)


class ImageBatch(Node):
    display_name = "Batch Images"
    category = "image"
    description = "Joins two image batches; image2 is resized to image1's size when they differ."
    inputs = (Input("image1", "IMAGE"), Input("image2", "IMAGE"))
    outputs = (Output("IMAGE"),)

    def run(self, image1: Any, image2: Any) -> tuple:
        import torch

        image1, image2 = _image_batch("image1", image1), _image_batch("image2", image2)
        if image1.shape[-1] != image2.shape[-1]:
            raise ValueError(f"input 'image2' has {image2.shape[-1]} channels but 'image1' has {image1.shape[-1]}")
        if image1.shape[1:3] != image2.shape[1:3]:
            image2 = _scale(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
        return (torch.cat((image1, image2)),)


NODES = [LoadImage, LoadImageMask, SaveImage, PreviewImage, ImageScale, ImageScaleBy, ImageInvert, ImageBatch]
