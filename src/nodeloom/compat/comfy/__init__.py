"""Stand-ins for the ComfyUI modules that custom-node packs import.

``nodeloom.compat.hook`` maps ``comfy``, ``comfy.utils``, ``comfy.model_management``,
``comfy.comfy_types``, ``comfy_execution``, ``comfy_api.v0_0_2``, ``folder_paths``, ``nodes``
and ``server`` to the modules of this package. Each shim reads the running engine through
``nodeloom.core.context`` (never a module-level engine), so one process can host several
engines. This package itself is what ``import comfy`` returns.
"""
