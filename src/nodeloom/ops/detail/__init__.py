"""Face/hand detailer algorithms: segments, detectors, mask processing, crop/paste, tracks.

Plain functions on numpy arrays (and torch only where a model is driven); no nodes here.
Submodules: ``segs`` (the SEGS type and conversions), ``process`` (ADetailer-order segment
processing), ``detect`` (detectors), ``crop`` (crop/upscale geometry), ``blend`` (feathered
paste and seam colour matching), ``prompts`` (per-segment prompt routing and seeds),
``detailer`` (the sequential detail pass), ``track`` (video tracks).
"""
