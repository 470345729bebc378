# Cross-build for 64-bit ARM Linux (aarch64) with Debian's cross compiler
# (apt-get install g++-aarch64-linux-gnu). See docs/deploy.md:
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build/aarch64
# HASTE_CROSS_PREFIX (or $HASTE_CROSS_PREFIX) changes the tool prefix.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT HASTE_CROSS_PREFIX)
  if(DEFINED ENV{HASTE_CROSS_PREFIX})
    set(HASTE_CROSS_PREFIX "$ENV{HASTE_CROSS_PREFIX}")
  else()
    set(HASTE_CROSS_PREFIX aarch64-linux-gnu-)
  endif()
endif()
set(CMAKE_C_COMPILER ${HASTE_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${HASTE_CROSS_PREFIX}g++)

# Debian's multiarch cross root; programs and headers (onnxruntime's) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
