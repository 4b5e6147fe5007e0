"""HTTP routes, one module per area. Each module has ``setup(routes, server)``.

Every route is registered twice, at ``/path`` and ``/api/path``, as ComfyUI does.
"""

ROUTE_MODULES = ("prompt", "info", "files", "jobs", "ws")
