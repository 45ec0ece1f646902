"""``comfy_api``: the versioned API packs import; ``comfy_api.v0_0_2`` is provided."""
