"""vpsmon's wire contract: .proto sources and the checked-in generated Python.

Regenerate with ``python -m proto.generate``.
"""
