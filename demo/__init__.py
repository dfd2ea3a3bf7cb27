"""The demo: synthetic departmental databases and partner simulators.

``python -m demo`` (see ``demo/__main__.py``) is the README's set-up entry
point and needs nothing but the standard library.
"""
