"""A classic pack that talks to clients through ``server.PromptServer`` like ComfyUI packs do."""

from aiohttp import web

from server import PromptServer


@PromptServer.instance.routes.get("/server_pack/hello")
async def hello(request):
    return web.json_response({"hello": "from server_pack"})


class NotifyClient:
    CATEGORY = "tests/server"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "notify"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"message": ("STRING", {"default": "hi"})}, "hidden": {"unique_id": "UNIQUE_ID"}}

    def notify(self, message, unique_id):
        PromptServer.instance.send_sync("server_pack.message", {"node": unique_id, "message": message})
        return {"ui": {"text": [message]}, "result": (message,)}


NODE_CLASS_MAPPINGS = {"NotifyClient": NotifyClient}
