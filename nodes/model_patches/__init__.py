"""MODEL/CLIP patch nodes from ComfyUI's comfy_extras: FreeU, HyperTile, model sampling, merging.

Each patch changes a clone, never the shared weights' owner: FreeU and HyperTile are UNet
call wrappers (:data:`nodes.diffusion.types.UNetWrapper`) that install hooks on the shared UNet
for the duration of one call; ModelSamplingDiscrete changes how the output is read; merges are
weight patches (like LoRA) applied in place with backups by the model manager.
"""
