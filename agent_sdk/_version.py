"""The package version, in a leaf module: code inside the package reads it from here, since an
import of ``agent_sdk`` itself would make every such module part of one circle through the
public re-exports in ``agent_sdk/__init__.py``."""

__version__ = "0.1.0"
