"""The job: fetch -> plan -> (claim -> compose -> render -> send -> record)*, the dry run,
the run report and the demo. The only package that brings every stage together.

May import: config, store, topics, problems, readers, articles, compose, render, delivery,
transport.
"""
