"""Graph passes: one module per pass, ``base`` (the ``Pass`` interface) and ``pipeline``
(the default order). Each pass imports only the core and ``base``; nothing here imports
the passes, so a pass module can be loaded on its own."""
