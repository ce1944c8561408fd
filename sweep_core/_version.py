"""The version of this build, written into every outcome record."""

__version__ = "0.1.0"
