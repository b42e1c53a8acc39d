"""The history store: `otklik store` keeps what the worker judged in SQL; `otklik report` reads it."""
