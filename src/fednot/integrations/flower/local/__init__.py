"""Tooling for a Flower deployment on this machine (``fednot flower up``), apart from the adapter.

The app directory, the SuperLink and SuperNode processes, and the deployment itself.
"""
