"""HTTP routes, one module per area, handlers at module level.

Each module of :data:`ROUTE_MODULES` has ``register(routes)``, which adds its handlers to a
``RouteTableDef``; ``create_app`` registers every route twice, at ``/path`` and ``/api/path``,
as ComfyUI does. ``plugins.register(app)`` adds the plugin routes, each at its own URL. Handlers
read their app's state from the request (:mod:`server.keys`), never from ``server.app``.
"""

ROUTE_MODULES = ("prompt", "info", "files", "jobs", "ws", "models", "userdata", "settings", "templates")
