"""Plugins that ship with CHIMP."""
