"""`Outcome`'s former address, kept only because chatapp/streaming/recording.py still imports it
from here: import it from `chatapp.store` (its home is answers.py), then delete this module."""

from .answers import Outcome

__all__ = ["Outcome"]
