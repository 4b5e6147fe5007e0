"""``comfy_api.latest.ui``: what a v3 node shows on itself (``NodeOutput(ui=...)``).

Each class builds the ``ui`` dict of ComfyUI's ``executed`` event and history entry
(``{"images": [...]}``, ``{"text": [...]}``...). Images are written with Weft's own PNG
writer (``nodes.diffusion.image.save_images``: ComfyUI's pixel conversion and metadata),
imported when a node runs so that importing this module stays cheap.
"""

from __future__ import annotations

import random
from typing import Any

from nodes.plugins.support import NotSupportedInWeft

from ._io import ComfyNode, FolderType, _UIOutput


def _folder(kind: FolderType | str) -> str:
    return kind.value if isinstance(kind, FolderType) else str(kind)


class SavedResult(dict):
    """One saved file as the ``ui`` lists it: ``{"filename", "subfolder", "type"}``."""

    def __init__(self, filename: str, subfolder: str, type: FolderType | str) -> None:
        super().__init__(filename=filename, subfolder=subfolder, type=_folder(type))

    @property
    def filename(self) -> str:
        return self["filename"]

    @property
    def subfolder(self) -> str:
        return self["subfolder"]

    @property
    def type(self) -> str:
        return self["type"]


class SavedImages(_UIOutput):
    """Images already saved (``SavedResult`` entries), optionally one animation."""

    def __init__(self, results: list[SavedResult | dict[str, Any]], is_animated: bool = False) -> None:
        self.results, self.is_animated = list(results), is_animated

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.results, "animated": (self.is_animated,)}


def _hidden(cls: type[ComfyNode] | None) -> tuple[Any, Any]:
    if cls is None:
        return None, None
    return cls.hidden.prompt, cls.hidden.extra_pnginfo


class ImageSaveHelper:
    """Saving IMAGE batches as PNG files, with the prompt in their metadata when ``cls`` is given."""

    @staticmethod
    def save_images(
        images: Any,
        filename_prefix: str,
        folder_type: FolderType | str,
        cls: type[ComfyNode] | None,
        compress_level: int = 4,
    ) -> list[SavedResult]:
        from nodes.diffusion.image import save_images

        prompt, extra = _hidden(cls)
        saved = save_images(images, _folder(folder_type), filename_prefix, prompt, extra, compress_level)
        return [SavedResult(s["filename"], s["subfolder"], s["type"]) for s in saved]

    @staticmethod
    def get_save_images_ui(
        images: Any, filename_prefix: str, cls: type[ComfyNode] | None, compress_level: int = 4
    ) -> SavedImages:
        return SavedImages(ImageSaveHelper.save_images(images, filename_prefix, FolderType.output, cls, compress_level))


class PreviewImage(_UIOutput):
    """Show an IMAGE batch on the node (written to temp/, like the PreviewImage node)."""

    def __init__(self, image: Any, animated: bool = False, cls: type[ComfyNode] | None = None, **kwargs: Any) -> None:
        suffix = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
        self.values = ImageSaveHelper.save_images(image, f"Weft_temp_{suffix}", FolderType.temp, cls, compress_level=1)
        self.animated = animated

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.values, "animated": (self.animated,)}


class PreviewMask(PreviewImage):
    """Show a MASK batch as grey images."""

    def __init__(self, mask: Any, animated: bool = False, cls: type[ComfyNode] | None = None, **kwargs: Any) -> None:
        image = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3)
        super().__init__(image, animated, cls, **kwargs)


class PreviewText(_UIOutput):
    """Show text on the node."""

    def __init__(self, value: str, **kwargs: Any) -> None:
        self.value = value

    def as_dict(self) -> dict[str, Any]:
        return {"text": (self.value,)}


class PreviewVideo(_UIOutput):
    """Show saved video files (``SavedResult`` entries)."""

    def __init__(self, values: list[SavedResult | dict[str, Any]], **kwargs: Any) -> None:
        self.values = list(values)

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.values, "animated": (True,)}


class PreviewUI3D(_UIOutput):
    """Show a saved 3D model file with its camera."""

    def __init__(self, model_file: Any, camera_info: Any, **kwargs: Any) -> None:
        self.model_file, self.camera_info = model_file, camera_info
        self.bg_image_path = kwargs.get("bg_image_path")

    def as_dict(self) -> dict[str, Any]:
        return {"result": [self.model_file, self.camera_info, self.bg_image_path]}


class PreviewAudio(_UIOutput):
    """Audio previews need an audio encoder Weft does not ship."""

    def __init__(self, audio: Any, cls: type[ComfyNode] | None = None, **kwargs: Any) -> None:
        raise NotSupportedInWeft("comfy_api.latest.ui.PreviewAudio (audio output)")

    def as_dict(self) -> dict[str, Any]:  # pragma: no cover - never constructed
        return {}


class SavedAudios(_UIOutput):
    """Audio files already saved by the node."""

    def __init__(self, results: list[SavedResult | dict[str, Any]]) -> None:
        self.results = list(results)

    def as_dict(self) -> dict[str, Any]:
        return {"audio": self.results}


__all__ = [
    "SavedResult",
    "SavedImages",
    "SavedAudios",
    "ImageSaveHelper",
    "PreviewImage",
    "PreviewMask",
    "PreviewText",
    "PreviewVideo",
    "PreviewUI3D",
    "PreviewAudio",
]
