"""Speech model code: Whisper speech recognition on transformers, loaded from local folders.

Sits beside ``ops``: packs call it; it never imports node classes, the engine or an adapter.
"""
