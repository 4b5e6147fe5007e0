"""What a v3 node declares about itself: ``Schema`` and the ``Hidden`` values it may ask for."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from ._io_declarations import Input, Output


# -- hidden inputs --------------------------------------------------------------------------
class Hidden(StrEnum):
    """Values the engine supplies to a node that asks for them (``Schema(hidden=[...])``)."""

    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """``cls.hidden`` inside ``execute``: the hidden values of the running node (``None`` when
    the schema did not ask for one)."""

    def __init__(
        self,
        unique_id: str | None = None,
        prompt: Any = None,
        extra_pnginfo: Any = None,
        dynprompt: Any = None,
        auth_token_comfy_org: str | None = None,
        api_key_comfy_org: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.unique_id = unique_id
        self.prompt = prompt
        self.extra_pnginfo = extra_pnginfo
        self.dynprompt = dynprompt
        self.auth_token_comfy_org = auth_token_comfy_org
        self.api_key_comfy_org = api_key_comfy_org

    def __getattr__(self, key: str) -> Any:
        return None

    @classmethod
    def from_dict(cls, values: dict[Any, Any] | None) -> HiddenHolder:
        values = values or {}
        return cls(**{member.name: values.get(member, values.get(member.name)) for member in Hidden})


# -- schema ---------------------------------------------------------------------------------
class Schema:
    """What a v3 node declares. Unknown keyword arguments (fields newer ComfyUI versions add,
    such as pricing badges) are kept but ignored."""

    def __init__(
        self,
        node_id: str,
        display_name: str | None = None,
        category: str = "sd",
        inputs: list[Input] | None = None,
        outputs: list[Output] | None = None,
        hidden: list[Hidden] | None = None,
        description: str = "",
        is_input_list: bool = False,
        is_output_node: bool = False,
        is_deprecated: bool = False,
        is_experimental: bool = False,
        is_api_node: bool = False,
        not_idempotent: bool = False,
        enable_expand: bool = False,
        **extra: Any,
    ) -> None:
        self.node_id = node_id
        self.display_name = display_name
        self.category = category
        self.inputs = list(inputs or [])
        self.outputs = list(outputs or [])
        self.hidden = list(hidden or [])
        self.description = description
        self.is_input_list = is_input_list
        self.is_output_node = is_output_node
        self.is_deprecated = is_deprecated
        self.is_experimental = is_experimental
        self.is_api_node = is_api_node
        self.not_idempotent = not_idempotent
        self.enable_expand = enable_expand
        self.extra = extra

    def validate(self) -> None:
        """Refuse what cannot work: duplicate input or output ids, a missing node id."""
        if not self.node_id or not isinstance(self.node_id, str):
            raise ValueError("Schema.node_id must be a non-empty string")
        input_ids = [i.id for i in self.inputs]
        duplicates = sorted({i for i in input_ids if input_ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"{self.node_id}: input ids appear twice: {duplicates}")
        output_ids = [o.id for o in self.outputs if o.id is not None]
        duplicates = sorted({o for o in output_ids if output_ids.count(o) > 1})
        if duplicates:
            raise ValueError(f"{self.node_id}: output ids appear twice: {duplicates}")

    def finalize(self) -> None:
        """Output nodes get ``prompt`` and ``extra_pnginfo`` (for the metadata of saved files)."""
        if self.is_output_node:
            for member in (Hidden.prompt, Hidden.extra_pnginfo):
                if member not in self.hidden:
                    self.hidden.append(member)
