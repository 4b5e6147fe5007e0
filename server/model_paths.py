"""Read ComfyUI's ``extra_model_paths.yaml`` so an existing ComfyUI models folder is reused.

Format: top-level sections, each with an optional ``base_path`` and model folder names
mapped to one or more paths (a multi-line string means several), relative to base_path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ModelPathsConfigError(ValueError):
    pass


def load_extra_model_paths(config_file: Path) -> dict[str, list[Path]]:
    import yaml

    try:
        data: Any = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelPathsConfigError(f"--extra-model-paths-config: file not found: {config_file}") from exc
    except yaml.YAMLError as exc:
        raise ModelPathsConfigError(f"--extra-model-paths-config: {config_file} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ModelPathsConfigError(f"{config_file}: expected sections mapping folder names to paths")
    result: dict[str, list[Path]] = {}
    for section_name, section in data.items():
        if not isinstance(section, dict):
            raise ModelPathsConfigError(f"{config_file}: section {section_name!r} must be a mapping")
        base = Path(str(section.get("base_path", ""))).expanduser()
        if not base.is_absolute():
            base = (config_file.parent / base).resolve()
        for folder, value in section.items():
            if folder in ("base_path", "is_default"):
                continue
            if not isinstance(value, str):
                raise ModelPathsConfigError(f"{config_file}: {section_name}.{folder} must be a path string")
            for line in value.splitlines():
                line = line.strip()
                if line:
                    path = Path(line).expanduser()
                    result.setdefault(folder, []).append(path if path.is_absolute() else base / path)
    return result
