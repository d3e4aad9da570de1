"""The two roles of a cvfl job, named once for every package."""

from __future__ import annotations

from typing import Literal

Role = Literal["leader", "follower"]
ROLES: tuple[Role, ...] = ("leader", "follower")
