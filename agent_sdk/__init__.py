"""agent-sdk: a CLI-first admin tool and local runtime for AI-agent runs."""
__version__ = "0.1.0"
