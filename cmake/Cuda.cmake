# The optional CUDA kernel of HasteConv (custom_op/haste_conv_cuda*, docs/architecture.md).
#
#   HASTE_ONNX_CUDA=OFF   (default) the CPU-only library
#   HASTE_ONNX_CUDA=AUTO  with CUDA when a CUDA compiler is found (CUDACXX, PATH)
#   HASTE_ONNX_CUDA=ON    with CUDA, or a configure error
#
# Set as a CMake cache variable (-DHASTE_ONNX_CUDA=AUTO) or, for pip installs,
# as an environment variable (HASTE_ONNX_CUDA=AUTO pip install .). OFF is the
# default so that a pip install on a CPU machine never spends minutes in nvcc.
# HASTE_ONNX_CUDA_ARCHITECTURES: the GPUs to build for (SASS for each, plus PTX
# of the newest, so later GPUs can JIT it). The CUDA runtime is linked
# statically: the library needs no libcudart and still loads in a CPU-only
# onnxruntime, which simply never places HasteConv on CUDA.
# Included from CMakeLists.txt after the haste_onnx_ops target is defined;
# sets HASTE_EXPORTS_MAP (the C entry point of haste_cuda_entry.h is exported too).
if(DEFINED ENV{HASTE_ONNX_CUDA} AND NOT DEFINED CACHE{HASTE_ONNX_CUDA})
  set(_haste_cuda_default "$ENV{HASTE_ONNX_CUDA}")
else()
  set(_haste_cuda_default OFF)
endif()
set(HASTE_ONNX_CUDA "${_haste_cuda_default}" CACHE STRING "Build the CUDA kernel: AUTO, ON or OFF")
set_property(CACHE HASTE_ONNX_CUDA PROPERTY STRINGS AUTO ON OFF)
set(HASTE_ONNX_CUDA_ARCHITECTURES "75-real;80-real;86-real;89-real;90" CACHE STRING
    "CUDA architectures of the kernel (CMake CUDA_ARCHITECTURES syntax)")

string(TOUPPER "${HASTE_ONNX_CUDA}" _haste_cuda)
set(HASTE_WITH_CUDA OFF)
if(_haste_cuda STREQUAL "ON" OR _haste_cuda STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(HASTE_WITH_CUDA ON)
  elseif(_haste_cuda STREQUAL "ON")
    message(FATAL_ERROR "HASTE_ONNX_CUDA=ON but no CUDA compiler was found (set CUDACXX to nvcc)")
  else()
    message(STATUS "haste-onnx: no CUDA compiler found, building without CUDA (HASTE_ONNX_CUDA=AUTO)")
  endif()
elseif(NOT _haste_cuda STREQUAL "OFF")
  message(FATAL_ERROR "HASTE_ONNX_CUDA must be AUTO, ON or OFF, got '${HASTE_ONNX_CUDA}'")
endif()

set(HASTE_EXPORTS_MAP ${CMAKE_CURRENT_SOURCE_DIR}/custom_op/exports.map)
if(HASTE_WITH_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "${HASTE_ONNX_CUDA_ARCHITECTURES}")
  endif()
  enable_language(CUDA)
  # The static CUDA runtime, found beside nvcc (a toolkit, or PyPI's nvidia-cuda-* wheels,
  # which ship no libcudart.so link for FindCUDAToolkit).
  get_filename_component(_haste_cuda_bin "${CMAKE_CUDA_COMPILER}" DIRECTORY)
  find_library(HASTE_CUDART_STATIC NAMES cudart_static
    HINTS ${CMAKE_CUDA_IMPLICIT_LINK_DIRECTORIES} "${_haste_cuda_bin}/../lib64" "${_haste_cuda_bin}/../lib"
          "${_haste_cuda_bin}/../targets/x86_64-linux/lib" "${_haste_cuda_bin}/../targets/sbsa-linux/lib"
    NO_DEFAULT_PATH)
  if(NOT HASTE_CUDART_STATIC)
    message(FATAL_ERROR "haste-onnx: libcudart_static.a not found beside ${CMAKE_CUDA_COMPILER}")
  endif()
  find_package(Threads REQUIRED)
  message(STATUS "haste-onnx: CUDA kernel with nvcc ${CMAKE_CUDA_COMPILER_VERSION} for ${HASTE_ONNX_CUDA_ARCHITECTURES}")
  # The kernels alone, with their own flags (the target's C++ warning flags are not nvcc's).
  add_library(haste_cuda_kernels OBJECT custom_op/haste_conv_cuda.cu)
  set_target_properties(haste_cuda_kernels PROPERTIES
    CUDA_ARCHITECTURES "${HASTE_ONNX_CUDA_ARCHITECTURES}"
    CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
    POSITION_INDEPENDENT_CODE ON
    CUDA_RUNTIME_LIBRARY Static)
  target_include_directories(haste_cuda_kernels PRIVATE custom_op)
  # Subnormals flushed (as the CPU kernel's FTZ/DAZ) and IEEE division (the
  # channel mean of step 3 is fixed bit for bit); never fast-math.
  target_compile_options(haste_cuda_kernels PRIVATE -O3 -ftz=true -prec-div=true -prec-sqrt=true
    -Xcompiler=-fvisibility=hidden)
  target_sources(haste_onnx_ops PRIVATE $<TARGET_OBJECTS:haste_cuda_kernels>
    custom_op/haste_conv_cuda_op.cc custom_op/haste_cuda_entry.cc)
  target_compile_definitions(haste_onnx_ops PRIVATE HASTE_WITH_CUDA)
  # Made before CUDA was enabled: give it the architectures too (it links as C++).
  set_target_properties(haste_onnx_ops PROPERTIES CUDA_ARCHITECTURES "${HASTE_ONNX_CUDA_ARCHITECTURES}")
  target_link_libraries(haste_onnx_ops PRIVATE ${HASTE_CUDART_STATIC} Threads::Threads ${CMAKE_DL_LIBS} rt)
  set(HASTE_EXPORTS_MAP ${CMAKE_CURRENT_SOURCE_DIR}/custom_op/exports_cuda.map)
endif()
