# Put this directory first on PYTHONPATH and `import optuna` fails: bench/strategies.py must then skip its
# peers with one line (tests/unit/test_bench_peers.py).
raise ImportError("optuna is blocked in this process (tests/no_optuna)")
