from setuptools import find_packages, setup

setup(
    name="minigrad",
    version="0.1.0",
    description="A small autograd engine on NumPy and CuPy that teaches how networks train efficiently",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["minigrad", "minigrad.*"]) + ["minigrad._cuda"],
    # The CUDA sources live in kernels/ and ship inside the package as minigrad/_cuda/*.cu.
    package_dir={"minigrad._cuda": "kernels"},
    # The CPU emulator of the kernels (minigrad/emulator) compiles them against its header.
    package_data={"minigrad._cuda": ["*.cu"], "minigrad.emulator": ["*.h", "*.cu"]},
    # threadpoolctl: limits the BLAS threads after NumPy has loaded (minigrad/threads.py).
    install_requires=["numpy>=1.24", "threadpoolctl>=3.1"],
    extras_require={
        "gpu": ["cupy-cuda13x"],
        "gpu-cuda12": ["cupy-cuda12x"],
        # NVRTC without a GPU: compiles the kernels in the CPU test suite.
        "nvrtc": ["cupy-cuda13x", "nvidia-cuda-nvrtc>=13,<14"],
        "mpi": ["mpi4py>=3.1", "mpich"],
        # numba: compiled CPU loops for batch norm and the max-pool after it (minigrad/nn/cpu_kernels.py)
        "fast": ["numba>=0.61"],
        "train": ["tqdm", "matplotlib", "numba>=0.61"],
        "dev": ["pytest", "hypothesis", "torch==2.13.0", "expecttest", "safetensors", "tqdm", "matplotlib",
                "numba>=0.61", "mpi4py>=3.1", "mpich", "cupy-cuda13x", "nvidia-cuda-nvrtc>=13,<14"],
    },
)
