"""Environments: social networks now; clocks, calendars, sensor streams and events build here."""

from personae.environments.networks import social_graph

__all__ = ["social_graph"]
