"""chimp.frontend"""
