"""Pulumi components of the sweep stack; ``__main__.py`` wires them."""
