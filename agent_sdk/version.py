"""The package's version, in a leaf of its own: a module that sends it (the HTTP client's
User-Agent) imports only this, not the package root with its lazy table of the whole API."""

__version__ = "0.1.0"
