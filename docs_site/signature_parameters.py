"""Griffe extension for the API page: each documented parameter shows its own signature's type and default.

Griffe's NumPy-style parser gives every name of a grouped entry (``p, ratio : float`` or an untyped
``check_finite, method``) the type and the default of the *first* name's signature, so the page showed
``ratio`` with ``p``'s default and ``method`` as a ``bool``. This extension replaces, for every parameter that
the signature has, the documented default by the signature's and the documented type by the signature's
annotation (the docstring's type stays only where the signature has no annotation). Loaded from
``mkdocs.yml`` (``handlers.python.options.extensions``); ``tests/test_docs.py`` checks the page against
``inspect.signature``.
"""

from __future__ import annotations

from griffe import Alias, DocstringSectionParameters, Extension, Object


class SignatureParameters(Extension):
    """Parameters sections that agree with the signatures they document."""

    def on_package(self, *, pkg, **kwargs) -> None:
        for obj in _objects(pkg):
            align_with_signature(obj)


def _objects(obj: Object):
    yield obj
    for member in obj.members.values():
        if not isinstance(member, Alias) and member.kind.value in ("module", "class", "function"):
            yield from _objects(member)


def align_with_signature(obj: Object) -> None:
    """Give each documented parameter of ``obj`` the annotation (if any) and default of its signature."""
    if obj.docstring is None or obj.kind.value not in ("class", "function"):
        return
    try:
        signature = {parameter.name: parameter for parameter in obj.parameters}
    except (AttributeError, KeyError):  # a class without an __init__ of its own
        return
    for section in obj.docstring.parsed:
        if not isinstance(section, DocstringSectionParameters):
            continue
        for documented in section.value:
            parameter = signature.get(documented.name)
            if parameter is None:
                continue
            documented.value = parameter.default
            if parameter.annotation is not None:
                documented.annotation = parameter.annotation
