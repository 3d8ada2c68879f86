"""Foundations every layer uses: paths, the run configuration (``RunConfig``, scales), devices
and numeric precision, provenance (commit, machine), atomic file writes and locks.

Nothing here imports another part of ``abanet_lib``.
"""
