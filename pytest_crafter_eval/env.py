"""Stage: environment. Wraps the real `crafter` package (placeholder; being written)."""
from crafter import constants

ACTIONS: tuple[str, ...] = tuple(constants.actions)
ACHIEVEMENTS: tuple[str, ...] = tuple(constants.achievements)
