"""Shared fixtures: the seed article's model, hypothesis profiles, and the ``cuda`` marker.

Peer libraries (timm, Lightning, transformers) are imported through ``peers.py``;
see there why an installed torchvision may need its operator names declared first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
SEED_SPEC = ROOT / "examples" / "seed.opt"
sys.path.insert(0, str(ROOT / "examples"))

import peers  # noqa: E402 (needs the tests folder on the path, as pytest puts it)

peers.repair_torchvision()

settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("long", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("SPECOPT_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def seed_model():
    """A fresh instance of the seed article's network (``cnn.VGG_16.convolution1_1.weight``, ...)."""
    from seed_model import Network

    return Network()


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``cuda`` where torch sees no CUDA device."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in marked:
        item.add_marker(skip)
