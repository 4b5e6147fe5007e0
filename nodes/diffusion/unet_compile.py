"""torch.compile of the denoiser: compiled once per UNet module and backend, reused by every prompt.

Compiling a UNet costs seconds on a GPU and minutes on a CPU, so it must happen once, not once
per prompt. The compiled forward is therefore kept here, beside the module it runs (a weak
reference: a UNet the model manager drops takes its compiled code with it), and found again by
any MODEL clone that asks for the same module and backend: a TorchCompileModel node re-run in
another graph, a LoRA on top, the ``--compile-unet`` setting. torch.compile's guards decide
when to compile again (a new latent size, batch, dtype or device); each :class:`CompiledUNet`
counts its compilations and the seconds they took, so "a second prompt does not recompile"
can be checked and the time reported.

What the UNet is called with is made uniform first: inside ``torch.inference_mode`` (the
sampling loop) an ordinary tensor (the first step's latent, the text embeddings) and an
inference tensor (every later step's latent) look different to torch.compile's guards, which
would compile the same graph twice; such inputs are copied into inference tensors.

A compilation that fails (inductor on a CPU without a C++ compiler, an unsupported backend or
operator) does not fail the picture: the call runs uncompiled, a warning names the node and the
reason, and that module and backend stay uncompiled from then on. torch is imported lazily.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import types
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("weft.compile")

#: the backends TorchCompileModel offers (ComfyUI's choices); torch's others ("eager",
#: "aot_eager") work here too and serve tests and benchmarks
BACKENDS = ("inductor", "cudagraphs")
#: the C++ compilers inductor looks for when it generates CPU code
CPP_COMPILERS = ("g++", "c++", "clang++")

_registry: weakref.WeakKeyDictionary[Any, dict[str, CompiledUNet]] = weakref.WeakKeyDictionary()


def _call_module(module: Any, args: tuple, kwargs: dict) -> Any:
    return module(*args, **kwargs)


def _fresh_forward() -> Callable[..., Any]:
    """A function of its own code object: torch.compile keeps its cache and its recompile limit
    per code object, so each compiled UNet gets its own instead of sharing one with all others."""
    code = _call_module.__code__.replace()
    return types.FunctionType(code, _call_module.__globals__, "weft_compiled_unet")


def check_backend(backend: str) -> None:
    """Raise ``ValueError`` naming torch's backends when ``backend`` is not one of them."""
    import torch

    try:
        torch._dynamo.lookup_backend(backend)
    except Exception as exc:
        known = ", ".join(torch._dynamo.list_backends())
        raise ValueError(f"{backend!r} is not a torch.compile backend (this torch has: {known})") from exc


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use for CPU code, or ``None`` when there is none."""
    candidates = [os.environ.get("CXX", "")]
    try:
        from torch._inductor import config

        configured = config.cpp.cxx
        candidates.extend(configured if isinstance(configured, tuple | list) else [configured])
    except Exception:  # an inductor without this setting: look for the usual names
        pass
    candidates.extend(CPP_COMPILERS)
    for name in candidates:
        if name and shutil.which(name):
            return name
    return None


class CompiledUNet:
    """One UNet module's forward compiled with one backend; call it as ``compiled(module, *args, **kwargs)``.

    ``compiles`` counts the graphs the backend built (torch.compile calls the backend once per
    graph it compiles); ``compile_seconds`` adds up the wall time of the calls that compiled
    (tracing, the backend, and that one forward pass). ``failure`` is the reason the module
    runs uncompiled, once a compilation failed.
    """

    def __init__(self, backend: str, owner: str) -> None:
        import torch

        check_backend(backend)
        self.backend = backend
        self.owner = owner
        self.compiles = 0
        self.compile_seconds = 0.0
        self.failure: str | None = None
        self._cpu_checked = False
        self._backend_fn = torch._dynamo.lookup_backend(backend)
        self._forward = torch.compile(_fresh_forward(), backend=self._build)

    def _build(self, graph: Any, example_inputs: list[Any]) -> Any:
        self.compiles += 1
        return self._backend_fn(graph, example_inputs)

    def __repr__(self) -> str:
        state = f"failed: {self.failure}" if self.failure else f"{self.compiles} compiled"
        return f"<CompiledUNet {self.backend} {state} in {self.compile_seconds:.1f}s>"

    def __call__(self, module: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._cpu_checked and self.backend == "inductor" and _on_cpu(args):
            self._cpu_checked = True  # once: a PATH search per step would show on small models
            if cpp_compiler() is None:
                self._fail("inductor needs a C++ compiler for CPU code (g++ or clang++ on PATH, or CXX); none found")
        if self.failure is not None:
            return module(*args, **kwargs)
        args, kwargs = _uniform((args, kwargs))
        before, start = self.compiles, time.perf_counter()
        try:
            out = self._forward(module, args, kwargs)
        except Exception as exc:
            out = module(*args, **kwargs)  # raises when the error was the model's, not the compiler's
            self._fail(_first_line(exc))
            return out
        if self.compiles > before:
            elapsed = time.perf_counter() - start
            self.compile_seconds += elapsed
            log.info(
                "%s: compiled the UNet with %s for input %s in %.1f s (%d graph(s) so far)",
                self.owner,
                self.backend,
                _shape(args),
                elapsed,
                self.compiles,
            )
        return out

    def _fail(self, reason: str) -> None:
        self.failure = reason
        log.warning(
            "%s: torch.compile with backend %r failed (%s); the UNet runs uncompiled (eager) from now on",
            self.owner,
            self.backend,
            reason,
        )


def compiled_unet(module: Any, backend: str, owner: str = "TorchCompileModel") -> CompiledUNet:
    """The :class:`CompiledUNet` of ``module`` for ``backend``, made on first request and kept
    for as long as the module lives."""
    per_backend = _registry.get(module)
    if per_backend is None:
        per_backend = {}
        _registry[module] = per_backend
    compiled = per_backend.get(backend)
    if compiled is None:
        compiled = CompiledUNet(backend, owner)
        per_backend[backend] = compiled
    return compiled


def compiled_runner(module: Any, backend: str, owner: str = "TorchCompileModel") -> Callable[..., Any]:
    """A callable with the module's own signature that runs its compiled forward."""
    compiled = compiled_unet(module, backend, owner)
    return lambda *args, **kwargs: compiled(module, *args, **kwargs)


def _uniform(value: Any) -> Any:
    """``value`` with every ordinary tensor copied into an inference tensor when inference mode
    is on (see the module's docstring); unchanged otherwise."""
    import torch

    if not torch.is_inference_mode_enabled():
        return value
    return _to_inference(value)


def _to_inference(value: Any) -> Any:
    import torch

    if torch.is_tensor(value):
        return value if value.is_inference() else value.clone()
    if isinstance(value, tuple):
        return tuple(_to_inference(v) for v in value)
    if isinstance(value, list):
        return [_to_inference(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_inference(v) for k, v in value.items()}
    return value


def _on_cpu(args: tuple) -> bool:
    first = args[0] if args else None
    return getattr(getattr(first, "device", None), "type", None) == "cpu"


def _shape(args: tuple) -> str:
    first = args[0] if args else None
    return str(list(first.shape)) if hasattr(first, "shape") else "?"


def _first_line(exc: BaseException) -> str:
    """The root cause's type and first line: torch wraps a backend's error in one whose first line
    only says which backend raised (``BackendCompilerFailed``, the error in ``inner_exception``)."""
    seen = {id(exc)}
    while True:
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            break
        exc = inner
        seen.add(id(exc))
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
