"""Naive loop implementations: slow, obviously correct, and used only to test the fast ones."""
