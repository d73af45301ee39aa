"""SafeRouter: an OpenAI-compatible LLM gateway that anyone can verify."""

__version__ = "0.1.0"
