"""bqnn: block-wise neural architecture search with Q-learning (BlockQNN), as an MPI batch application.

The package's build script: `pip install -e ".[mpich,dev]"` (setup.sh does it). pyproject.toml beside it
declares the build system and configures the checks (ruff, mypy, import-linter).
"""
from setuptools import find_packages, setup

TORCH = "torch>=2.13,<3"

setup(
    name="bqnn",
    version="0.1.0",
    description="BlockQNN: block-wise neural network architecture search with Q-learning, on MPI and SLURM",
    packages=find_packages(include=["bqnn", "bqnn.*"]),
    # the dashboard's page, script, style and its chart library (Chart.js, MIT): served from the package, no CDN
    package_data={"bqnn.dashboard": ["static/*"]},
    python_requires=">=3.11",
    install_requires=[
        # the releases CI runs (2.13): older ones lack torch.OutOfMemoryError and fused Adam on the CPU, which the
        # trainer uses. Install the build for your machine first (setup.sh pins the CPU wheel; docs/gpu.md: CUDA)
        TORCH,
        "numpy>=1.24",
        "h5py>=3.8",
        "mpi4py>=3.1",
        "pillow>=9",  # image folders (ImageNet layout)
        "matplotlib>=3.6",  # the report's figures
    ],
    extras_require={
        "mpich": ["mpich"],  # an MPI for machines without one (gives mpiexec in the environment)
        "vision": ["torchvision"],  # image folders via torchvision (optional)
        "onnx": ["onnx>=1.17", "onnxscript>=0.5"],  # python -m bqnn.export --onnx (torch.export-based exporter)
        "peers": ["optuna>=4"],  # bench/strategies.py: Optuna's samplers beside bqnn's strategies
        # tests and checks: lint, types, the layers contract (import-linter), property-based tests; the unit tests
        # and end-to-end tests run on both cores (pytest-xdist), the MPI and SLURM ones one at a time
        "dev": ["pytest>=7", "pytest-xdist>=3", "onnx>=1.17", "onnxscript>=0.5", "onnxruntime", "optuna>=4",
                "ruff>=0.17,<0.18", "mypy>=2.4,<2.5", "import-linter>=2.16,<3", "hypothesis>=6.100",
                # the dashboard's tests drive Debian's chromium through its chromedriver (nothing is downloaded)
                "selenium>=4.20"],
    },
)
