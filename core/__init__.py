"""The bottom layer every other package may use: a source's configuration
(``config``), codes (``codes``, ``scalars``), errors, the record types of
every department (``records``), and small utilities (``text``,
``threads``, ``masking``).

It imports no other package of this project (``tests/test_layers.py``).
"""
