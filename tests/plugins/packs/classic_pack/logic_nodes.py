"""Logic, list, loop and async nodes in the classic contract."""

import asyncio

from comfy_execution.graph import ExecutionBlocker
from comfy_execution.graph_utils import GraphBuilder


class ClassicLazySwitch:
    """Evaluates only the branch it returns: ComfyUI's lazy inputs with check_lazy_status."""

    CATEGORY = "tests/classic/logic"
    RETURN_TYPES = ("*",)
    FUNCTION = "switch"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "choose_a": ("BOOLEAN", {"default": True}),
                "a": ("*", {"lazy": True}),
                "b": ("*", {"lazy": True}),
            }
        }

    def check_lazy_status(self, choose_a, a=None, b=None):
        if choose_a and a is None:
            return ["a"]
        if not choose_a and b is None:
            return ["b"]
        return []

    def switch(self, choose_a, a=None, b=None):
        return (a if choose_a else b,)


class ClassicGate:
    """Blocks everything downstream when closed (ExecutionBlocker)."""

    CATEGORY = "tests/classic/logic"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "gate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"forceInput": True}), "open": ("BOOLEAN", {"default": True})}}

    def gate(self, text, open):
        return (text if open else ExecutionBlocker(None),)


class ClassicSplitWords:
    """One string in, a list out (OUTPUT_IS_LIST): downstream nodes run once per word."""

    CATEGORY = "tests/classic/list"
    RETURN_TYPES = ("STRING",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "split"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    def split(self, text):
        return (text.split(),)


class ClassicUpper:
    CATEGORY = "tests/classic/text"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "upper"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"forceInput": True})}}

    def upper(self, text):
        return (text.upper(),)


class ClassicJoinList:
    """INPUT_IS_LIST: receives every input as a whole list, in one call."""

    CATEGORY = "tests/classic/list"
    RETURN_TYPES = ("STRING",)
    INPUT_IS_LIST = True
    FUNCTION = "join"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"items": ("STRING", {"forceInput": True}), "separator": ("STRING", {"default": ","})}}

    def join(self, items, separator):
        assert isinstance(items, list) and isinstance(separator, list)
        text = separator[0].join(items)
        return {"ui": {"text": [text]}, "result": (text,)}


class ClassicCountdown:
    """A loop by expansion: appends ``step`` and expands into itself with count - 1."""

    CATEGORY = "tests/classic/loop"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "loop"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text": ("STRING", {"default": ""}),
                "step": ("STRING", {"default": "."}),
                "count": ("INT", {"default": 3, "min": 0, "max": 1000}),
            }
        }

    def loop(self, text, step, count):
        if count <= 0:
            return (text,)
        graph = GraphBuilder()
        joined = graph.node("StringConcatenate", string_a=text, string_b=step, delimiter="")
        again = graph.node("ClassicCountdown", text=joined.out(0), step=step, count=count - 1)
        return {"result": (again.out(0),), "expand": graph.finalize()}


class ClassicAsyncEcho:
    """An ``async def`` FUNCTION: awaited by the engine without blocking other async nodes."""

    CATEGORY = "tests/classic/async"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "echo"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""}), "delay": ("FLOAT", {"default": 0.01})}}

    async def echo(self, text, delay):
        await asyncio.sleep(delay)
        return (f"<{text}>",)


class ClassicNodeCounter:
    """Uses the DYNPROMPT hidden input as ComfyUI's DynamicPrompt object."""

    CATEGORY = "tests/classic/logic"
    RETURN_TYPES = ("INT",)
    FUNCTION = "count"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}, "hidden": {"dynprompt": "DYNPROMPT", "unique_id": "UNIQUE_ID"}}

    def count(self, dynprompt, unique_id):
        assert dynprompt.get_node(unique_id)["class_type"] == "ClassicNodeCounter"
        return (len(dynprompt.all_node_ids()),)


class ClassicRunCounter:
    """Keeps a counter on ``self``: ComfyUI reuses a node's object across runs."""

    CATEGORY = "tests/classic/logic"
    RETURN_TYPES = ("INT",)
    FUNCTION = "count"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"salt": ("INT", {"default": 0})}}

    def __init__(self):
        self.runs = 0

    def count(self, salt):
        self.runs += 1
        return (self.runs,)


class ClassicNeedsSampler:
    """Reaches for ComfyUI's sampler module only when it runs, as many packs do."""

    CATEGORY = "tests/classic/unsupported"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    def sample(self, text):
        import comfy.samplers

        return (str(comfy.samplers),)


NODE_CLASS_MAPPINGS = {
    "ClassicLazySwitch": ClassicLazySwitch,
    "ClassicGate": ClassicGate,
    "ClassicSplitWords": ClassicSplitWords,
    "ClassicUpper": ClassicUpper,
    "ClassicJoinList": ClassicJoinList,
    "ClassicCountdown": ClassicCountdown,
    "ClassicAsyncEcho": ClassicAsyncEcho,
    "ClassicNodeCounter": ClassicNodeCounter,
    "ClassicNeedsSampler": ClassicNeedsSampler,
    "ClassicRunCounter": ClassicRunCounter,
}
