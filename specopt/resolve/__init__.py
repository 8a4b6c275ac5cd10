"""Resolve: a plan against a model's parameters, key by key, in order, into what every parameter gets.

``resolution`` is the stage's entry (:func:`resolve`, :class:`Resolution`);
``match`` matches every selector in one walk of the module tree, ``cascade``
applies statements key by key, ``owners`` assigns each parameter its optimizer,
``layer_depths`` places parameters in layers and ``timeline`` says when each
is trainable.
"""

from .resolution import Resolution, ParamAssignment, GroupSpec, ModelIndex, index_model, resolve

__all__ = ["Resolution", "ParamAssignment", "GroupSpec", "ModelIndex", "index_model", "resolve"]
