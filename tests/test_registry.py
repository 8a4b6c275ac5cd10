"""The builtin registry matches the installed torch's constructors."""

from __future__ import annotations

import pytest

from specopt.build.assemble import constructor_defaults, load_target
from specopt.catalog.registry import OPTIMIZERS, check_kind


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_entry_matches_torch(name):
    info = OPTIMIZERS[name]
    real = constructor_defaults(load_target(info.target))
    assert {o.name for o in info.options} == set(real)
    for option in info.options:
        assert option.default == real[option.name], option.name
        assert check_kind(option.kind, option.default), option.name
