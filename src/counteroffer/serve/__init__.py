"""``counteroffer serve``: an OpenAI-compatible chat-completions server for a local model or trained checkpoint.

FastAPI and uvicorn come with the ``serve`` extra; import :mod:`counteroffer.serve.app` for the server itself.
"""

from __future__ import annotations

__all__ = ["create_app", "serve"]


def __getattr__(name: str):  # lazy: importing the package must not pull in FastAPI or torch
    if name in __all__:
        from counteroffer.serve import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
