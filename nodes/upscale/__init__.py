"""Upscale models: ComfyUI's UpscaleModelLoader and ImageUpscaleWithModel, on Weft's own networks.

ComfyUI reads these files with the ``spandrel`` library. Weft cannot: spandrel imports
torchvision when it is imported, and PyPI's torchvision wheels do not work beside the CPU build
of torch Weft installs. So the networks most published upscale models use are written here
from their papers: ESRGAN / Real-ESRGAN's RRDBNet (both key layouts) and Real-ESRGAN's
SRVGGNetCompact.

* :mod:`.detect` tells the network and its sizes from a file's key names and shapes (no torch);
* :mod:`.architectures` holds the torch modules;
* :mod:`.model` is the UPSCALE_MODEL value (a model-manager handle) and file loading;
* :mod:`.tiling` runs a model over an image in overlapping, blended tiles;
* :mod:`.nodes` holds the two nodes.
"""
