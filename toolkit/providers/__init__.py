"""Wire formats: each builds one call's whole request and translates its stream, nothing else.

A wire format (OpenAI chat completions, Anthropic Messages, Gemini) is apart from an endpoint
(base URL, key variable, quirks: ``tk.Model``): one format serves every endpoint that speaks it.
The runner only ever sees the ``WireFormat`` protocol below and normalized events.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError
from ._http import ErrorFault, Translator, WireRequest

if TYPE_CHECKING:
    from ..models import Model
    from ..validate import Schema

# name -> module that defines FORMAT; imported when first used
_MODULES = {
    "openai-chat": "openai_chat",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "openai-responses": "openai_responses",
}


class WireFormat(Protocol):
    """What the runner needs of a wire format."""

    name: str

    def build_request(
        self,
        model: Model,
        messages: list[dict[str, Any]],
        *,
        key: str | None,
        schema: Schema | None = None,
    ) -> WireRequest:
        """URL, headers (the key in this format's header), body; ``schema`` asks for
        schema-constrained output in this format's own way."""
        ...

    def translator(self, model: Model, call_id: str) -> Translator:
        """A fresh translator for one attempt's event stream."""
        ...

    def error_detail(self, obj: Any) -> str:
        """The readable message of this format's JSON error body."""
        ...

    def error_fault(self, status: int, obj: Any) -> ErrorFault:
        """The error kind (over the status's) and the wait an HTTP error's JSON body says;
        ``(None, None)`` when it says nothing beyond its status and headers."""
        ...


def names() -> list[str]:
    """The wire formats a ``tk.Model`` can speak (``wire_format=``)."""
    return list(_MODULES)


def wire_format(name: str) -> WireFormat:
    """The wire format called ``name``."""
    module = _MODULES.get(name)
    if module is None:
        raise ConfigError(f"unknown wire_format {name!r}; choose one of {names()}.")
    found: WireFormat = importlib.import_module(f".{module}", __name__).FORMAT
    return found


__all__ = ["ErrorFault", "Translator", "WireFormat", "WireRequest", "names", "wire_format"]
