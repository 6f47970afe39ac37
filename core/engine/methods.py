"""The registry of training methods: a strategy entry names its method (Strategy.method), this says which it is.

Adding a method is one entry here plus one engine module implementing core.engine.method.Method
(usually extending core.engine.plain.Plain); the trainer, codegen, the model card, export and
compare ask the method, never the strategy's name.
"""

from __future__ import annotations

from core.engine import adaptation, distill, plain, transfer
from core.engine.method import Method
from core.spec import strategies
from core.spec.config import RunConfig

METHODS: dict[str, Method] = {m.id: m for m in (plain.METHOD, adaptation.METHOD, transfer.METHOD, distill.METHOD)}


def get(method_id: str) -> Method:
    """The method with this id."""
    return METHODS[method_id]


def of(config: RunConfig) -> Method:
    """The method that trains this config's strategy."""
    return METHODS[strategies.get(config.strategy).method]


def is_method(config: RunConfig, method: Method) -> bool:
    """True when this config trains with this method (e.g. `is_method(config, distill.METHOD)`)."""
    return of(config).id == method.id
