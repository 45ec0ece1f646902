"""Loaded-model management shared by every pack (diffusion, detection, text)."""

from nodeloom.models.manager import LoadedModel, ModelManager, model_key

__all__ = ["LoadedModel", "ModelManager", "model_key"]
