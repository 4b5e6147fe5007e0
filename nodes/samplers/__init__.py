"""Sampler research nodes: SAMPLERs that run a loop of their own.

A diffusers scheduler's ``step`` sees one model output at a time on a fixed grid of noise
levels. Some samplers need more: an error-controlled solver chooses its own noise levels and
may retry a step; a momentum method keeps a velocity across steps. Each of these is a SAMPLER
object with ``sample_loop(run)`` (see :mod:`nodes.diffusion.loops`): the loop hands it the
guided model as a k-diffusion denoiser (``x = x0 + sigma * eps``) plus the bookkeeping that
makes it behave like the built-in samplers (inpainting mask, progress, previews, interrupts).
Counters go through the run protocol (``begin_run`` / ``report``) to the sampler node's UI
text and the log.

* :mod:`.momentum`: heavy-ball (HB) and generalised heavy-ball (GHVB) momentum on
  DPM-Solver++(2M) and PLMS (Wizadwongsa et al., ICLR 2024, arXiv 2307.11118);
  ``dpmpp_2m_hb``, ``dpmpp_2m_ghvb``, ``plms_hb``, ``plms_ghvb`` and node ``SamplerMomentum``.
* :mod:`.dpm_solver`: ComfyUI's ``dpm_fast`` and ``dpm_adaptive`` (DPM-Solver, Lu et al.,
  NeurIPS 2022, arXiv 2206.00927) and node ``SamplerDPMAdaptative``.
* :mod:`.gotta_go_fast`: the adaptive SDE solver of Jolicoeur-Martineau et al. (arXiv
  2105.14080), node ``SamplerGottaGoFast``.
* :mod:`.dpmpp_sde`: ComfyUI's DPM-Solver++ SDE samplers (Lu et al., arXiv 2211.01095) with
  Brownian-tree noise (``dpmpp_sde``, ``dpmpp_2m_sde``, ``dpmpp_2m_sde_heun``, ``dpmpp_3m_sde``
  and their ``_gpu`` twins) and nodes ``SamplerDPMPP_SDE``, ``SamplerDPMPP_2M_SDE``,
  ``SamplerDPMPP_3M_SDE``.
* ComfyUI's deterministic and ancestral samplers no diffusers scheduler expresses, with the
  CFG++ variants (Chung et al., arXiv 2406.08070) that re-noise with the unconditional estimate
  (:meth:`~nodes.diffusion.loops.LoopRun.denoise_with_uncond`): :mod:`.ancestral` (Euler and
  DPM-Solver++(2S), ancestral and CFG++; nodes ``SamplerEulerAncestral``,
  ``SamplerEulerAncestralCFGPP``, ``SamplerDPMPP_2S_Ancestral``, ``SamplerEulerCFGpp``),
  :mod:`.exponential` (``res_multistep`` family, arXiv 2308.02157; ``exp_heun_2_x0``;
  ``dpmpp_2m_cfg_pp``), :mod:`.multistep` (``ipndm_v``, arXiv 2312.00094; ``gradient_estimation``,
  arXiv 2306.04848; node ``SamplerLMS``) and :mod:`.heunpp` (``heunpp2``).
* :mod:`.sde_extras`: ComfyUI's ``er_sde`` (ER-SDE-Solver-3, Cui et al., arXiv 2309.06169),
  ``seeds_2``, ``seeds_3`` and ``exp_heun_2_x0_sde`` (SEEDS, Gonzalez et al., arXiv 2305.14267);
  nodes ``SamplerER_SDE``, ``SamplerSEEDS2``.
* :mod:`.sa_solver`: ComfyUI's ``sa_solver`` and ``sa_solver_pece`` (SA-Solver, Xue et al.,
  NeurIPS 2023, arXiv 2309.05019), a stochastic Adams predictor-corrector; node ``SamplerSASolver``.
* :mod:`.adaptive`: what the two adaptive solvers share (integration range, counters, progress).

The names usable in KSampler's ``sampler_name`` are registered in
:data:`nodes.diffusion.samplers.LOOP_SAMPLERS`, which builds them from these modules on demand.
"""
