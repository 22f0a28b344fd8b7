"""Output formats shared by every ``hetkv`` command module (no other imports: no cycles)."""

from enum import Enum


class Format(str, Enum):
    """``--format``: a rich table for people, or one JSON object on stdout for scripts."""

    table = "table"
    json = "json"
