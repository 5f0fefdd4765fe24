"""Responses: the API (api), one turn of model calls (turn), items, streams and the event log, server tools."""
