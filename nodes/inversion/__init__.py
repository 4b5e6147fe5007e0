"""Inversion and real-image editing: a picture's LATENT taken back into the model's noise space.

Each technique is a module of its own, built on the loop's types (MODEL, CONDITIONING, LATENT,
SIGMAS, SAMPLER, GUIDER), so it combines with LoRA, ControlNet and the guidance nodes:

* :mod:`.ddim`: DDIM inversion (Song et al.; as used by Mokady et al.'s null-text inversion),
  with optional fixed-point refinement of each step;
* :mod:`.edict`: EDICT, exact inversion with two coupled latents (Wallace, Gokul, Naik, CVPR 2023);
* :mod:`.ddpm_edit_friendly`: edit-friendly DDPM noise maps (Huberman-Spiegelglas, Kulikov,
  Michaeli, CVPR 2024);
* :mod:`.direct_inversion`: Direct Inversion's corrected source branch (Ju et al., ICLR 2024);
* :mod:`.inversion_free`: InfEdit's DDCM virtual inversion (Xu et al., CVPR 2024);
* :mod:`.sampler_nodes`: the SAMPLER that regenerates from an INVERSION and its SIGMAS;
* :mod:`.edit_image`: ``EditImage``, one node that expands into the parts above;
* :mod:`.common`: the INVERSION value and the guided denoiser they all evaluate.

Every inversion works in k-diffusion's space (``x = x0 + sigma * eps``, the scaled latent), the
space :class:`nodes.diffusion.loops.LoopRun` hands to samplers with their own loop, so an
inversion and its matching sampler evaluate exactly the same function of the same numbers.
"""
