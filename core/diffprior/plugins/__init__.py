"""The plugin system: hooks, discovery and the registry, the cached index, the core's own
built-ins (registered like any plugin's), the ``new-plugin`` scaffold and ``check-plugin``.
"""
