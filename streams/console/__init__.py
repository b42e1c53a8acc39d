"""The operations console: `otklik console`, the ЦУР team's web pages over the history store."""
