"""mlci: GitOps CI for machine learning."""

__version__ = "0.1.0"
