"""Guidance research nodes: how the sampler's predictions become one guided prediction.

Each technique is either a MODEL patch on the guidance hook (:mod:`nodes.diffusion.cfg_hooks`,
ComfyUI's ``sampler_pre_cfg_function`` / ``sampler_cfg_function`` / ``sampler_post_cfg_function``)
or a GUIDER (:class:`nodes.diffusion.guidance.Guider` with its own ``predictor``), so they run
in KSampler and SamplerCustomAdvanced alike and compose with each other:

* :mod:`.apg`: Adaptive Projected Guidance (Sadat et al., ICLR 2025), a pre-CFG hook;
* :mod:`.rescale_cfg`: RescaleCFG (Lin et al., WACV 2024), the CFG function;
* :mod:`.interval`: CFGGuidanceInterval (Kynkäänniemi et al., NeurIPS 2024), a pre-CFG hook;
* :mod:`.pag`: Perturbed-Attention Guidance (Ahn et al., ECCV 2024), a post-CFG hook with a
  second MODEL whose middle-block self-attention is the identity;
* :mod:`.adaptive`: Adaptive Guidance (Castillo et al., AAAI 2025), a GUIDER that stops
  evaluating the unconditional branch once guidance has converged;
* :mod:`.perp_neg`: Perp-Neg (Armandpour et al., 2023), a GUIDER for positive, negative and
  empty prompt, and the same as the CFG function of a MODEL;
* :mod:`.sag`: Self-Attention Guidance (Hong et al., ICCV 2023), a post-CFG hook with a call
  wrapper that records the middle block's self-attention map;
* :mod:`.dual_cfg`: ComfyUI's DualCFGGuider (two prompts and a negative); :mod:`.multi_cond`
  evaluates such guiders' three prompts in one UNet call.

Hooks that keep state over a run (APG's momentum, the counters behind reports) take part in
the sampling loop's run protocol (``begin_run`` / ``report``, :mod:`nodes.diffusion.sampling`).
"""
