"""``comfy_api``: the versioned API packs import — ``comfy_api.latest`` (the V3 node API) and
its aliases ``comfy_api.v0_0_2`` / ``comfy_api.v0_0_1``, plus ``comfy_api.internal``."""
