"""``python -m wavemae_service``: serve with settings from the WAVEMAE_* environment."""

from .serve import serve

if __name__ == "__main__":
    serve()
