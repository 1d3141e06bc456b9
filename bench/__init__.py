"""sqlagent's benchmark suite (`make bench` = `python -m bench`; see bench/README.md).

Starts the real stack (API and Celery worker processes, a fresh PostgreSQL app database, a Redis of
its own, an OpenAI-compatible test server), measures each scenario several times next to baselines
taken in the same run, and prints one table (also written as JSON to bench/results/)."""
