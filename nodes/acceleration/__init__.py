"""Acceleration nodes: MODEL patches that make sampling cheaper without changing the loop.

Each technique is a UNet call wrapper (:data:`nodes.diffusion.types.UNetWrapper`) with the
sampling loop's run protocol (``begin_run`` / ``report``):

* :mod:`.deepcache`: DeepCache (Ma, Fang, Wang, CVPR 2024), deep features reused between steps;
* :mod:`.faster_diffusion`: Faster Diffusion's encoder propagation (Li et al., 2023);
* :mod:`.torch_compile`: TorchCompileModel, the UNet's forward through torch.compile (a wrapper
  that replaces what the innermost call runs, see :mod:`nodes.diffusion.unet_compile`);
* :mod:`.feature_cache`: what they share (noise window, per-batch cache slots, reports);
* :mod:`.unet_forward`: a diffusers UNet forward pass run piece by piece.
"""
