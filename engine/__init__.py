"""Graph engine: validation, caching, execution. Imports neither torch, aiohttp nor nodes/."""

from .blocker import ExecutionBlocker
from .cache import OutputCache
from .context import ExecutionContext, Interrupted, InterruptFlag, current_context
from .executor import Executor, RunResult
from .prompt import is_link, normalise_prompt
from .schema import InputSpec, NodeDefinition, NodeResult, NodeSchema, OutputSpec
from .validation import ValidationResult, validate_prompt, validate_prompt_async

__all__ = [
    "ExecutionBlocker",
    "OutputCache",
    "ExecutionContext",
    "Interrupted",
    "InterruptFlag",
    "current_context",
    "Executor",
    "RunResult",
    "is_link",
    "normalise_prompt",
    "InputSpec",
    "NodeDefinition",
    "NodeResult",
    "NodeSchema",
    "OutputSpec",
    "ValidationResult",
    "validate_prompt",
    "validate_prompt_async",
]
