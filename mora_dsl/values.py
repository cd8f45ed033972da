"""Evaluation of the manifest's symbolic values, for its consumers.

The compiler folds everything it can; what is left depends on a deployment (a
param, a generated secret, a wizard answer, a service's URL). A consumer walks a
value with :func:`refs` to learn what it needs, resolves those references its own
way (stack config, Pulumi outputs, the manager's store) and calls
:func:`evaluate`. The built-in functions live in :mod:`mora_dsl.builtins` so the
compiler's constant folding and deploy-time evaluation cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from . import builtins
from .manifest import Call, Concat, ListValue, MapValue, Ref


class EvaluationError(ValueError):
    """A value could not be evaluated (e.g. ``base_dn`` of something that is not a domain)."""


def refs(value: Any) -> Iterator[Ref]:
    """Every reference inside ``value``, depth first, in order."""
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, Concat):
        for part in value.concat:
            yield from refs(part)
    elif isinstance(value, Call):
        for arg in value.args:
            yield from refs(arg)
    elif isinstance(value, ListValue):
        for item in value.list:
            yield from refs(item)
    elif isinstance(value, MapValue):
        for item in value.map.values():
            yield from refs(item)


def is_constant(value: Any) -> bool:
    return next(refs(value), None) is None


def evaluate(value: Any, resolve: Callable[[Ref], Any]) -> Any:
    """The plain Python value of ``value``; ``resolve`` gives each reference's value."""
    if isinstance(value, Ref):
        return resolve(value)
    if isinstance(value, Concat):
        return "".join(builtins.to_text(evaluate(p, resolve)) for p in value.concat)
    if isinstance(value, Call):
        args = [evaluate(a, resolve) for a in value.args]
        try:
            return builtins.apply(value.call, args)
        except (TypeError, ValueError) as err:
            raise EvaluationError(f"{value.call}(): {err}") from None
    if isinstance(value, ListValue):
        return [evaluate(i, resolve) for i in value.list]
    if isinstance(value, MapValue):
        return {k: evaluate(v, resolve) for k, v in value.map.items()}
    return value


def to_text(value: Any) -> str:
    """How a value reads when written into an environment variable or a file."""
    return builtins.to_text(value)
