"""TorchCompileModel: the denoiser through torch.compile, as a MODEL patch (ComfyUI's node).

The patch is a call wrapper that does nothing around the call; what it changes is what the
innermost call runs (``replace_unet``, the hook of :meth:`DiffusionModel._unet_runner`): the
UNet module's forward compiled by :mod:`nodes.diffusion.unet_compile`, which keeps it across
prompts. As a run participant it reports to the sampler node's UI and the log how many graphs
this run compiled and how long that took ("compiled=0" on a prompt that reused the compiled
UNet), or that it fell back to the uncompiled UNet and why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nodes.api import Combo, Input, Node, Output
from nodes.diffusion.unet_compile import BACKENDS

if TYPE_CHECKING:
    from nodes.diffusion.types import DiffusionModel, UNetCall
    from nodes.diffusion.unet_compile import CompiledUNet


class TorchCompileInputError(ValueError):
    """A TorchCompileModel input torch cannot use."""


class CompileWrapper:
    """The MODEL wrapper of TorchCompileModel: runs the UNet's compiled forward, reports the compile time."""

    name = "TorchCompileModel"

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._compiled: CompiledUNet | None = None
        self._start: tuple[int, float] = (0, 0.0)

    def __repr__(self) -> str:
        return f"<TorchCompileModel {self.backend}>"

    def __call__(self, apply: Callable[[UNetCall], Any], call: UNetCall) -> Any:
        return apply(call)

    def replace_unet(self, module: Any) -> Callable[..., Any]:
        from nodes.diffusion.unet_compile import compiled_unet

        compiled = compiled_unet(module, self.backend, owner=self.name)
        if self._compiled is not compiled:  # the run's first call (or another module): counts start here
            self._compiled = compiled
            self._start = (compiled.compiles, compiled.compile_seconds)
        return lambda *args, **kwargs: compiled(module, *args, **kwargs)

    # -- the sampling loop's run protocol ------------------------------------------------------
    def begin_run(self, sigmas: Any) -> None:
        self._compiled = None

    def report(self) -> dict[str, Any]:
        compiled = self._compiled
        if compiled is None:
            return {}
        report: dict[str, Any] = {
            "name": self.name,
            "backend": self.backend,
            "compiled": compiled.compiles - self._start[0],
            "compile_s": round(compiled.compile_seconds - self._start[1], 2),
        }
        if compiled.failure is not None:
            report["fallback"] = f"eager ({compiled.failure})"
        return report


class TorchCompileModel(Node):
    category = "_for_testing"
    experimental = True
    description = (
        "Runs the model's UNet through torch.compile. The first sampling steps wait for the compilation "
        "(seconds on a GPU, minutes on a CPU); later prompts with the same model and size reuse it. The "
        "sampler node reports the compile time. If compiling fails (inductor on a CPU needs a C++ "
        "compiler) the UNet runs uncompiled and a warning says why."
    )
    inputs = (
        Input("model", "MODEL"),
        Combo("backend", list(BACKENDS), tooltip="inductor: generated kernels; cudagraphs: CUDA graphs (GPU only)"),
    )
    outputs = (Output("MODEL"),)

    def run(self, model: DiffusionModel, backend: str) -> tuple[DiffusionModel]:
        from nodes.diffusion.unet_compile import check_backend

        try:
            check_backend(backend)
        except ValueError as exc:
            raise TorchCompileInputError(f"backend: {exc}") from exc
        kept = tuple(w for w in model.wrappers if not isinstance(w, CompileWrapper))
        return (model.clone(wrappers=(*kept, CompileWrapper(backend))),)


NODES = [TorchCompileModel]
