"""Defines a node id that the built-ins already use; it must be namespaced, not replace it."""


class StringConcatenate:
    CATEGORY = "tests"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"string_a": ("STRING",), "string_b": ("STRING",)}}

    def run(self, string_a, string_b):
        return (f"{string_a}+{string_b}",)


NODE_CLASS_MAPPINGS = {"StringConcatenate": StringConcatenate}
