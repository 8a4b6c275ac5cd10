"""Adapters for the frameworks that run the training loop: Lightning, the Hugging Face Trainer and
Accelerate (imported as ``specopt.lightning``, ``specopt.hf`` and ``specopt.accelerate``).
"""

