"""Helpers over the generated wire models: optional fields, chat chunks assembled. No API logic here."""
