"""Face/hand detailer algorithms: segments, detectors, mask processing, crop/paste, tracks.

Plain functions on numpy arrays (torch only where a YOLO runtime needs it); no nodes here.
Submodules: ``segs`` (the SEGS type and conversions), ``process`` (ADetailer-order segment
processing), ``detect`` (detectors), ``yolo`` (user YOLO weights), ``crop`` (crop/upscale
geometry), ``blend`` (feathered paste and seam colour matching), ``prompts`` (per-segment
prompt routing and seeds), ``detailer`` (the sequential detail pass), ``track`` (video tracks).
"""
