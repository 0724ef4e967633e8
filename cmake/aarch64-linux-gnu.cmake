# Cross-compiling the CPU code for 64-bit ARM Linux with Debian's cross compiler
# (g++-aarch64-linux-gnu, which brings the target's C library, libstdc++ and libgomp under
# /usr/aarch64-linux-gnu). The binaries run here under qemu-user: CTest and tools/aarch64_check.sh
# start them through CMAKE_CROSSCOMPILING_EMULATOR.
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#
# NEON is part of the ARMv8-A base, so no -march flag is needed for it: the compiler vectorises
# the portable loops (the GEMM micro-kernel, exp_float, the element-wise ops) with NEON and
# contracts a * b + c into fused multiply-adds, as it does for -march=native on x86.
#
# The target root has no fmt and no doctest (Debian ships libfmt's compiled part per
# architecture, and installing libfmt-dev:arm64 would mean adding a second dpkg architecture to the
# machine). Both are used from the build machine's headers instead: doctest is header-only, and
# fmt's compiled part is compiled once for the target from cmake/fmt_compiled_once.cpp (see
# SINKLAB_HOST_HEADER_DEPS in CMakeLists.txt).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(SINKLAB_CROSS_TRIPLE aarch64-linux-gnu)
set(SINKLAB_CROSS_ROOT /usr/${SINKLAB_CROSS_TRIPLE})
find_program(SINKLAB_CROSS_CXX ${SINKLAB_CROSS_TRIPLE}-g++)
if(NOT SINKLAB_CROSS_CXX)
  message(FATAL_ERROR "${SINKLAB_CROSS_TRIPLE}-g++ not found: install g++-aarch64-linux-gnu (tools/setup.sh)")
endif()
set(CMAKE_CXX_COMPILER ${SINKLAB_CROSS_CXX})

# Libraries, headers and CMake packages only from the target root; programs from the build machine.
set(CMAKE_FIND_ROOT_PATH ${SINKLAB_CROSS_ROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Test executables (and anything CMake itself runs) go through qemu-user, which looks up the target's
# dynamic loader and shared libraries under -L.
find_program(SINKLAB_QEMU qemu-aarch64)
if(SINKLAB_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${SINKLAB_QEMU} -L ${SINKLAB_CROSS_ROOT})
endif()

# The project's options for a cross build: no -march=native (that is the build machine), no CUDA,
# fmt and doctest from the build machine's headers.
set(SINKLAB_NATIVE OFF CACHE BOOL "" FORCE)
set(SINKLAB_CUDA OFF CACHE BOOL "" FORCE)
set(SINKLAB_HOST_HEADER_DEPS ON CACHE BOOL "" FORCE)
