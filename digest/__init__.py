"""digest: a self-hosted newsletter digest sender for news sites.

Data flows one way: store -> compose -> render -> send -> record. See README.md.
"""

__version__ = "0.1.0"
