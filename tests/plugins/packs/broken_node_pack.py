"""One good node and one that raises at definition: the good one must still load."""


class GoodNode:
    CATEGORY = "tests"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1})}}

    def run(self, value):
        return (value + 1,)


class BadNode:
    CATEGORY = "tests"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        raise ValueError("bad definition")

    def run(self):
        return (0,)


NODE_CLASS_MAPPINGS = {"GoodNode": GoodNode, "BadNode": BadNode}
