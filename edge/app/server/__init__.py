"""The server the phone calls: FastAPI on uvicorn, `edge serve`.

``create_app`` is imported lazily so that `edge serve --help` and the settings checks run
without loading TensorFlow."""

from .settings import ServerSettings, is_loopback

__all__ = ["create_app", "ServerSettings", "is_loopback"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
