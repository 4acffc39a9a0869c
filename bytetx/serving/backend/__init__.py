"""Triton Python-backend models; each file is copied into a model repository as that model's model.py."""
