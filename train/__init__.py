"""Training stage: architectures, augmentation, imbalance handling and the trainer.

Imports the shared core (``edge``); the core never imports this package."""
