"""Code every CHIMP service shares: settings, typed contracts, errors, datastore, registry adapter.

Nothing in here imports a service; services import this package and never each other.
"""
