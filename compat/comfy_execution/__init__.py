"""``comfy_execution``: the expansion and flow-control helpers packs use, mapped onto Weft's engine."""
