"""Serving bytetx models on Triton Inference Server: model repositories and ``bytetx-serve``.

Needs the ``serve`` extra (``pip install 'bytetx[serve]'``): nvidia-pytriton, which bundles the
``tritonserver`` binary and its Python backend, and tritonclient.
"""
