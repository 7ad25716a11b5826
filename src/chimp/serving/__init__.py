"""chimp.serving"""
