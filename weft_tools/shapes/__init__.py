"""The built-in shapes model: a procedural dataset, its judge, and the scripts that train it.

``dataset`` draws captioned pictures of coloured shapes (with masks and edge maps), ``judge``
reads a picture back into words with pixel statistics alone, and ``train`` trains an
SD1.x-layout text-to-image model plus a ControlNet on them. The trained weights ship in
``models_builtin/`` at the repository root and load through the ordinary checkpoint code.
"""
