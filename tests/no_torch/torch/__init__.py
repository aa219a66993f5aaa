# Put this directory first on PYTHONPATH and `import torch` fails: tests run rank 0 and simulated workers
# this way to show that they never import torch (tests/e2e/test_no_torch.py, tests/mpi/test_golden_mpi.py).
raise ImportError("torch is blocked in this process (tests/no_torch): rank 0 and simulated workers must not import it")
