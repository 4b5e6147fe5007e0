"""Diffusion nodes on diffusers: models, text encoders, VAE, conditioning, sampling.

Nothing here imports torch, diffusers or transformers at import time: the server lists the
nodes without them and the heavy libraries load the first time a model does.
"""
