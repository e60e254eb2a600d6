"""The local scoring server's app: runs ``score.py`` exactly like azmlinfsrv 1.5.1.

Import the submodules directly (``modelstore.serving.app.create_app``); this package imports
nothing itself so that ``modelstore --help`` never pays for Flask.
"""
