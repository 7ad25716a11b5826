"""chimp.training"""
