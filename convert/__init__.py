"""Compression and conversion stage: quantization-aware training and TFLite conversion.

Reads and writes model bundles from the shared core (``edge``); the core never imports this package."""
