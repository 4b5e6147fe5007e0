"""Inference-time steering: sampling guided by a REWARD on the pictures being drawn.

A REWARD scores decoded pictures (higher is better, :mod:`.reward`); the built-in ones are in
:mod:`.builtin_rewards` and their nodes in :mod:`.reward_nodes`. The steering SAMPLERs
(:mod:`.particles`, nodes in :mod:`.steering_nodes`) run several particles through the loop's
:class:`~nodes.diffusion.loops.LoopRun` hook: Feynman-Kac steering resamples them by
potentials computed from the reward of their intermediate clean predictions; best-of-N, the
baseline, only picks the best at the end. The base steps they move particles with, and the
resampling and potential arithmetic, live in :mod:`.base_steps` and :mod:`.resampling`.
"""
