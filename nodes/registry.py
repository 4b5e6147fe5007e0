"""The catalogue of node classes the engine may run.

Built-in packs are modules that list their classes in ``NODES``; the registry adapts each
to the engine's ``NodeDefinition`` protocol and remembers which pack provided it, so
/object_info and saved workflows can say where a node came from.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from engine.schema import NodeDefinition

from .api import Node, NodeDefinitionError
from .dynamic import node_definition

#: Modules of the built-in catalogue; each exposes ``NODES``. Keep heavy imports (torch,
#: diffusers) inside the nodes' functions so importing these stays cheap.
BUILTIN_MODULES: tuple[str, ...] = (
    "nodes.primitives",
    "nodes.text",
    "nodes.math",
    "nodes.utility",
    "nodes.logic",
    "nodes.diffusion.loaders",
    "nodes.diffusion.conditioning",
    "nodes.diffusion.controlnet",
    "nodes.diffusion.lora",
    "nodes.diffusion.sampler_nodes",
    "nodes.sigma_schedules",
    "nodes.sigma_ops",
    "nodes.diffusion.latent",
    "nodes.diffusion.vae_nodes",
    "nodes.diffusion.image",
    "nodes.samplers.momentum",
    "nodes.samplers.dpm_solver",
    "nodes.samplers.gotta_go_fast",
    "nodes.samplers.dpmpp_sde",
    "nodes.samplers.sde_extras",
    "nodes.samplers.sa_solver",
    "nodes.samplers.ancestral",
    "nodes.samplers.multistep",
    "nodes.masks",
    "nodes.image_ops",
    "nodes.upscale.nodes",
    "nodes.batch_ops",
    "nodes.batch_join",
    "nodes.resize_ops",
    "nodes.canny",
    "nodes.latent_ops",
    "nodes.conditioning_ops",
    "nodes.vae_tiled",
    "nodes.file_io",
    "nodes.checkpoints",
    "nodes.model_patches.freeu",
    "nodes.model_patches.hypertile",
    "nodes.model_patches.model_sampling",
    "nodes.model_patches.merging",
    "nodes.model_patches.differential_diffusion",
    "nodes.acceleration.deepcache",
    "nodes.acceleration.faster_diffusion",
    "nodes.acceleration.torch_compile",
    "nodes.inversion.ddim",
    "nodes.inversion.edict",
    "nodes.inversion.ddpm_edit_friendly",
    "nodes.inversion.sampler_nodes",
    "nodes.inversion.direct_inversion",
    "nodes.inversion.inversion_free",
    "nodes.inversion.edit_image",
    "nodes.guidance.apg",
    "nodes.guidance.rescale_cfg",
    "nodes.guidance.interval",
    "nodes.guidance.pag",
    "nodes.guidance.adaptive",
    "nodes.guidance.dual_cfg",
    "nodes.guidance.perp_neg",
    "nodes.guidance.sag",
    "nodes.steering.reward_nodes",
    "nodes.steering.steering_nodes",
)

BUILTIN_PACK = "weft"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("weft")
    except PackageNotFoundError:
        return "0.0.0"


class NodeRegistry(Mapping[str, NodeDefinition]):
    def __init__(self) -> None:
        self._definitions: dict[str, NodeDefinition] = {}

    def __getitem__(self, name: str) -> NodeDefinition:
        return self._definitions[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._definitions)

    def __len__(self) -> int:
        return len(self._definitions)

    def register(
        self,
        node: type[Node] | NodeDefinition,
        *,
        pack: str = BUILTIN_PACK,
        version: str | None = None,
        replace: bool = False,
    ) -> NodeDefinition:
        """Add a node class (or a ready definition); duplicates are refused unless ``replace``."""
        origin = {"pack": pack, "version": version or _version()}
        if isinstance(node, type) and issubclass(node, Node):
            definition: Any = node_definition(node, origin)
        else:
            definition = node
            if hasattr(definition, "set_origin"):
                definition.set_origin(origin)
        name = definition.schema.name
        if name in self._definitions and not replace:
            existing = self._definitions[name].schema.origin.get("pack", "?")
            raise NodeDefinitionError(f"node {name!r} from pack {pack!r} is already registered by {existing!r}")
        self._definitions[name] = definition
        return definition

    def register_all(self, nodes: Iterable[type[Node] | NodeDefinition], **kwargs: Any) -> None:
        for node in nodes:
            self.register(node, **kwargs)

    def register_module(self, module_name: str, **kwargs: Any) -> None:
        module = importlib.import_module(module_name)
        self.register_all(module.NODES, **kwargs)


def builtin_registry() -> NodeRegistry:
    registry = NodeRegistry()
    for module_name in BUILTIN_MODULES:
        registry.register_module(module_name)
    return registry
