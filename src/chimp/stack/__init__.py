"""chimp.stack"""
